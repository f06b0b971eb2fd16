"""The earlier run's model, which `--overwrite_output_dir` removes with the rest of that run (`run_folder.start_over`).

Why: it used to stay "until this run's replaces it". A new run killed before its final save (Ctrl-C, out of memory, a
crash) then left the earlier model beside its own `run_inputs.json` and checkpoint, and nothing told them apart: a
3-label model trained on one folder beside the record of a 2-label run on another, `hfspeech stage RUN` published the
earlier weights under the new run's name, `predict RUN` and `evaluate --model RUN` scored with them, all exit 0.
Removed at the start, the folder holds this run's model or none: a command given it meanwhile says there is no model,
and the new run resumed from its checkpoint ends with its own.

The model's files: config.json, preprocessor_config.json, the weights in any format and their shards, and the code
its `auto_map` names (a run started from a repo with remote code saves that code beside its weights) with the modules
that code imports relatively (transformers copies those too). Regular files only: a link is the user's. A run that
loads that very model (`--model_name_or_path RUN --output_dir RUN`) is refused in one line before anything goes: its
weights are loaded after the fresh start, and kept they would pass for this run's.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping, Optional

from hfspeech.errors import UsageError
from hfspeech.models.fingerprint import model_files
from hfspeech.output_folders import folder_named

MODEL_CONFIGS = ("config.json", "preprocessor_config.json")  # config.json first: without it no model loads
# transformers' `get_relative_imports`: the modules `custom_object_save` copies beside the one `auto_map` names
RELATIVE_IMPORTS = (re.compile(r"^\s*import\s+\.(\S+)\s*$", re.MULTILINE),
                    re.compile(r"^\s*from\s+\.(\S+)\s+import", re.MULTILINE))


def earlier_model_names(output_dir: str) -> list[str]:
    """The names of the model's files in `output_dir` (the module docstring says which), config.json first."""
    folder = Path(output_dir)
    names = dict.fromkeys([*MODEL_CONFIGS, *model_files(folder), *remote_code_names(folder)])
    return [name for name in names if (folder / name).is_file() and not (folder / name).is_symlink()]


def remote_code_names(folder: Path) -> list[str]:
    """The `.py` files the model's `auto_map` entries name (`module.Class`, or `repo--module.Class` as loaded from
    the Hub), and those they import relatively, that are in `folder`."""
    pending = [f"{reference.split('--')[-1].rsplit('.', 1)[0]}.py" for reference in auto_map_references(folder)]
    found: list[str] = []
    while pending:
        name = pending.pop()
        path = folder / name
        if name in found or not is_module_beside(name, folder):
            continue
        found.append(name)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):  # not code transformers could have copied: nothing more to follow
            continue
        pending += [f"{module}.py" for pattern in RELATIVE_IMPORTS for module in pattern.findall(source)]
    return found


def is_module_beside(name: str, folder: Path) -> bool:
    """Whether `name` is a module file directly in `folder`: a bare Python name (`modeling_cnn.py`), a regular file
    there. An `auto_map` of `../x.Class`, `/abs/x.Class` or `linked/x.Class` (review R2: each removed a file outside
    the run), or `from .. import b` read as `.py`, names none."""
    module = name[:-len(".py")]
    path = folder / name
    return (module.isidentifier() and path.is_file() and not path.is_symlink()
            and path.resolve().parent == folder.resolve())


def auto_map_references(folder: Path) -> list[str]:
    """Every `auto_map` value of the model's config.json and preprocessor_config.json (a tokenizer's is a list). A
    config that cannot be read names none: it goes, and code of unknown purpose stays."""
    references = []
    for name in MODEL_CONFIGS:
        try:
            auto_map = json.loads((folder / name).read_text(encoding="utf-8")).get("auto_map") or {}
        except (OSError, ValueError, AttributeError):
            continue
        values = auto_map.values() if isinstance(auto_map, dict) else []
        for value in values:
            references += [item for item in (value if isinstance(value, list) else [value])
                           if isinstance(item, str) and "." in item]
    return references


def refuse_loading_it(output_dir: str, model_names: list[str], inputs: Mapping[str, Optional[str]]) -> None:
    """`--model_name_or_path RUN --output_dir RUN --overwrite_output_dir` (a run fine-tuned further in its own
    folder): the model it starts from would be gone before its weights were loaded; a one-line `UsageError`."""
    for flag, path in inputs.items() if model_names else ():
        if path and same_folder(path, output_dir):
            raise UsageError(folder_named(output_dir, "--output_dir", (
                f"--overwrite_output_dir would remove the earlier run's model, which {flag} {path} is loaded from; "
                "copy it elsewhere first, or give another --output_dir")))


def same_folder(path: str, output_dir: str) -> bool:
    try:
        return os.path.samefile(path, output_dir)
    except OSError:  # a Hub name, or a path that is not there
        return False
