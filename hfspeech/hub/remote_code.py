"""Self-contained model code for a Hub repo, so the baselines load where hfspeech is not installed.

transformers' remote-code loader copies the module named in ``auto_map`` plus the modules it imports
*relatively* (``from .x import y``) from the same folder. hfspeech's modules import each other absolutely
(``from hfspeech.models.pooling import ...``), so the modules a class needs are gathered from the installed
package source, following its ``hfspeech`` imports, and written flat with those imports made relative.
Generated at staging time: never a second, hand-maintained copy of the model code.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Optional

HFSPEECH_IMPORT = re.compile(r"^from hfspeech\.(?:[\w.]+\.)?(\w+) import", re.MULTILINE)
RELATIVE_IMPORT = re.compile(r"^from \.(\w+) import", re.MULTILINE)


def module_sources(module_name: str) -> dict[str, str]:
    """``{file name: rewritten source}`` for ``module_name`` and every hfspeech module it imports, recursively."""
    sources: dict[str, str] = {}
    origins: dict[str, str] = {}
    pending = [module_name]
    while pending:
        name = pending.pop()
        short = name.rsplit(".", 1)[-1]
        if short in origins:
            if origins[short] != name:
                raise ValueError(f"two hfspeech modules named {short}.py ({origins[short]}, {name}) "
                                 "cannot share a repo folder")
            continue
        origins[short] = name
        source = Path(importlib.util.find_spec(name).origin).read_text(encoding="utf-8")
        pending += [m.group(0)[len("from "):-len(" import")] for m in HFSPEECH_IMPORT.finditer(source)]
        sources[f"{short}.py"] = HFSPEECH_IMPORT.sub(lambda m: f"from .{m.group(1)} import", source)
    return sources


def write_remote_code(config_class: type, model_class: type, feature_extractor_class: Optional[type],
                      dest: Path) -> dict:
    """Write the code of the classes into ``dest``; returns the ``auto_map`` of config and extractor (no
    extractor: the model uses one transformers has, e.g. Whisper's, named in preprocessor_config.json).

    The names follow transformers' ``register_for_auto_class`` (``<module file>.<class>``); the classes are
    not registered themselves, since that is global state that would make every later ``save_pretrained``
    in the process copy code.
    """
    classes = [cls for cls in (config_class, model_class, feature_extractor_class) if cls is not None]
    files = {name: source for cls in classes for name, source in module_sources(cls.__module__).items()}
    for cls in classes:
        entry = cls.__module__.rsplit(".", 1)[-1]
        # From a local folder (a downloaded snapshot) transformers copies only the entry module's *direct*
        # relative imports, so each entry module imports every module it needs itself.
        direct = set(RELATIVE_IMPORT.findall(files[f"{entry}.py"])) | {entry}
        indirect = sorted(name[:-3] for name in module_sources(cls.__module__) if name[:-3] not in direct)
        files[f"{entry}.py"] += "".join(
            f"from .{name} import __name__ as _  # noqa: F401  (transformers copies {name}.py)\n" for name in indirect)
    for name, source in files.items():
        (dest / name).write_text(source, encoding="utf-8")

    def ref(cls: type) -> str:
        return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"

    extractor = {"AutoFeatureExtractor": ref(feature_extractor_class)} if feature_extractor_class else None
    return {"config": {"AutoConfig": ref(config_class), "AutoModelForAudioClassification": ref(model_class)},
            "feature_extractor": extractor}
