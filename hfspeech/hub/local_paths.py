"""Local paths out of a staged repo: what is published names files as the data set does, never where they live.

A run folder's records are its owner's and name files by their full local path: data_report.json lists the
files skipped and ignored (and the decoder's messages repeat them), and ``model_name_or_path`` may be a local
checkpoint. Published, they would show the user's home, user name and folder layout. Staging rewrites them:
a data file as its path inside the data folder (``low/broken.wav``), or, outside it, as its folder and name
(how the split audit's warnings show files); other paths in the data folder, the run folder and the home
folder by a placeholder; a local checkpoint by its folder name. ``check_no_local_paths`` is the last guard,
like the token check: staging stops rather than publish one of those paths.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable, Optional

from hfspeech.data.clip_digests import folder_and_name
from hfspeech.models.config_json import DATA_REPORT_FILE, read_run_record

RUN_INPUTS_FILE = "run_inputs.json"  # training.run_inputs_file.DATA_RECORD_FILE (hub may not import training)
MANIFEST_KEYS = ("train_file", "validation_file", "test_file")
CHECKPOINT_KEYS = ("model_name_or_path", "_name_or_path")
LOCAL_CHECKPOINT = " (a local checkpoint)"


def home_folder() -> str:
    """The user's home, when it is a folder a path could give away (not `/`)."""
    home = os.path.normpath(os.path.expanduser("~"))
    return home if len(Path(home).parts) >= 2 else ""


def data_roots(run: Path) -> list[str]:
    """The run's data folders as run_inputs.json records them (absolute): --data_dir and each manifest's folder,
    longest first. A folder that holds the home folder is left out: paths inside it would name the user."""
    record = read_run_record(run / RUN_INPUTS_FILE)
    data = record.get("data") if isinstance(record, dict) else None
    data = data if isinstance(data, dict) else {}
    candidates = [data.get("data_dir")] + [os.path.dirname(str(data[k])) for k in MANIFEST_KEYS if data.get(k)]
    home = home_folder()
    roots = {os.path.normpath(r) for r in candidates if isinstance(r, str) and os.path.isabs(r)}
    return sorted((r for r in roots if len(Path(r).parts) >= 2 and not (home + os.sep).startswith(r + os.sep)),
                  key=len, reverse=True)


def shown_path(path: str, roots: list[str]) -> str:
    """A data file as published: its path inside a data folder, else its folder and name (`low/a.wav`)."""
    normal = os.path.normpath(path)
    for root in roots:
        if normal.startswith(root + os.sep):
            return Path(normal[len(root) + 1:]).as_posix()
    return folder_and_name(normal) if Path(normal).parts else normal


def listed_files(report) -> list[str]:
    """The paths data_report.json lists: its skipped files (per split) and ignored files."""
    if not isinstance(report, dict):
        return []
    skipped = report.get("skipped") if isinstance(report.get("skipped"), dict) else {}
    entries = [e for files in skipped.values() if isinstance(files, list) for e in files]
    entries += report.get("ignored") if isinstance(report.get("ignored"), list) else []
    return [e["path"] for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)]


def public_checkpoint(name_or_path, run: Optional[Path] = None):
    """A checkpoint as published: a Hub id as it is (a fetched pretrained folder by its Hub id), a local folder
    by its name only; with ``run``, also a folder only `run`'s records show was local (`recorded_local_start`)."""
    from hfspeech.models.whisper.pretrained import hub_id_of

    if not isinstance(name_or_path, str) or not name_or_path:
        return name_or_path
    name = hub_id_of(name_or_path)
    if (os.path.isabs(name) or name.startswith(("~", ".")) or os.path.exists(name)
            or (run is not None and recorded_local_start(run, name))):
        return Path(os.path.normpath(name)).name + LOCAL_CHECKPOINT
    return name


def recorded_local_start(run: Path, name: str) -> bool:
    """Whether `name`, the start `run`'s records name as typed, was a local folder though none is there now: a
    folder beside `run`, or the one run_inputs.json holds made absolute at training time (`runs/probe`, deleted
    since or typed in another working folder, was published as it was: it reads like a Hub id)."""
    from hfspeech.models.whisper.pretrained import hub_id_of

    if (run.parent / name).is_dir():
        return True
    recorded = read_run_record(run / RUN_INPUTS_FILE).get("model_name_or_path")
    if not isinstance(recorded, str) or not os.path.isabs(recorded) or hub_id_of(recorded) != recorded:
        return False  # a Hub id, or a fetched pretrained folder (its Hub id)
    recorded, given = os.path.normpath(recorded), os.path.normpath(name)
    return recorded == given or recorded.endswith(os.sep + given)


def is_hub_id(name) -> bool:
    """A Hub repo id (`openai/whisper-base`), not a local folder nor a local checkpoint's published name."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except (HFValidationError, TypeError):
        return False
    return not os.path.exists(name)


def path_replacer(run: Path) -> Callable[[str], str]:
    """Text -> the same text with the run's local paths replaced (longest first, so a file before its folder)."""
    roots = data_roots(run)
    replacements = {path: shown_path(path, roots) for path in listed_files(read_run_record(run / DATA_REPORT_FILE))
                    if os.path.isabs(path)}
    replacements.update({root: "<data folder>" for root in roots})
    replacements[str(run)] = run.name
    if home_folder():
        replacements[home_folder()] = "~"
    order = sorted(replacements, key=len, reverse=True)

    def replace(text: str) -> str:
        for old in order:
            text = text.replace(old, replacements[old])
        return text

    return replace


def _public(value, replace: Callable[[str], str], run: Path):
    if isinstance(value, dict):
        return {k: _public(public_checkpoint(v, run) if k in CHECKPOINT_KEYS else v, replace, run)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v, replace, run) for v in value]
    return replace(value) if isinstance(value, str) else value


def publish_records(dest: Path, run: Path) -> None:
    """Rewrite the staged JSON records of ``dest`` without the local paths of ``run`` (a record left as it is
    when it holds none)."""
    replace = path_replacer(run)
    for file in sorted(dest.rglob("*.json")):
        record = json.loads(file.read_text(encoding="utf-8"))
        public = _public(record, replace, run)
        if public != record:
            file.write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")


TEXT_SUFFIXES = (".json", ".md", ".py", ".txt")  # weights are not searched: random bytes can spell a short path


def local_path_in(dest: Path, run: Path) -> Optional[tuple[Path, str]]:
    """The first staged text file that still holds the home folder, the run folder or a data folder, and that
    path; None when none does."""
    needles = [n for n in (home_folder(), str(run), *data_roots(run)) if n]
    for file in sorted(dest.rglob("*")):
        if file.is_file() and file.suffix in TEXT_SUFFIXES:
            text = file.read_bytes()
            found = next((n for n in needles if n.encode() in text), None)
            if found:
                return file, found
    return None


def hub_base_model(run: Path, hops: int = 4) -> Optional[str]:
    """The Hub id `run` was trained from, following local checkpoints' own records back (a probe run, then a
    fine-tune of it: the card said "fine-tuned from runC (a local checkpoint)" and gave no `base_model`, though
    runC's record names openai/whisper-tiny.en); None where the chain ends in no Hub id. Each folder's run_inputs.json
    or training_hyperparameters.json `model_name_or_path`, else its config's `_name_or_path`, else its card's
    `base_model`; a relative path is read as given, else beside `run` (sibling run folders)."""
    from hfspeech.models.whisper.pretrained import hub_id_of

    folder = run
    for _ in range(hops):
        name = _recorded_base(folder)
        if not name:
            return None
        name = hub_id_of(name)
        local = next((Path(p) for p in (name, run.parent / name) if os.path.isdir(p)), None)
        if local is None:
            return name if is_hub_id(name) else None
        if local.resolve() == folder.resolve():
            return None
        folder = local
    return None


def _recorded_base(folder: Path) -> Optional[str]:
    """What `folder`'s own records say it was trained from (see `hub_base_model`), or None."""
    from huggingface_hub import ModelCard

    # run_inputs.json first: its path is absolute where the start was a local folder at training time, so a
    # relative `runs/probe` deleted since is never taken for a Hub id (`base_model: runs/probe` was published)
    for record, key in ((folder / RUN_INPUTS_FILE, "model_name_or_path"),
                        (folder / "training_hyperparameters.json", "model_name_or_path"),
                        (folder / "config.json", "_name_or_path")):
        try:
            value = read_run_record(record).get(key)
        except Exception:  # a damaged record of another folder: the chain ends here
            value = None
        if isinstance(value, str) and value:
            return value
    try:
        value = ModelCard((folder / "README.md").read_text(encoding="utf-8")).data.base_model
    except Exception:  # no card, not a model card
        return None
    return value if isinstance(value, str) and value else None


def public_folder_name(folder) -> Optional[str]:
    """The name a card may give a local folder (`--eval_dir held_out_clips`), or None where it would name the user
    (`--eval_dir ~` published "alice": the path guard looks for the whole home path only)."""
    import getpass

    name = Path(os.path.abspath(folder)).name
    with contextlib.suppress(Exception):  # no user name to compare with (a container without one)
        if name in (getpass.getuser(), Path.home().name):
            return None
    return name or None
