"""Stage a training run as a Hub-ready model repo folder.

Only an allow-list of files is copied (weights as safetensors, configs, reports, the ONNX exports), so
optimizer and RNG states, checkpoints, training_args.bin and anything else in the run folder never leave
it; a file that is a link out of the run folder is refused (one to a file inside it is copied as that file).
Baselines get their code (``hfspeech.hub.remote_code``) and ``auto_map`` entries, so they load without hfspeech.
The records are published without the user's local paths (``hfspeech.hub.local_paths``). As a last guard, no
staged file may contain the Hub token in use, nor a text file the home, run or data folder. The repo is written
into a scratch folder and replaces the destination's content only once complete; the destination is new, empty or
an earlier staging (`staged_names`), never a folder holding anything of the user's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Optional

from huggingface_hub import ModelCard

from hfspeech.errors import HfspeechError, UsageError, first_few, writing_to
from hfspeech.evaluation.report_names import report_file_names
from hfspeech.hub.card import write_model_card
from hfspeech.hub.card_variants import measure_variants
from hfspeech.hub.local_paths import RUN_INPUTS_FILE, local_path_in, public_folder_name, publish_records
from hfspeech.hub.own_files import onnx_problem, own_report_files
from hfspeech.hub.card_training import variant_warnings
from hfspeech.inference.agreement import HeldOutError, held_out_labels, labelled_clips
from hfspeech.inference.held_out import is_manifest
from hfspeech.models.config_json import (DATA_REPORT_FILE, HYPERPARAMETERS_FILE, INT8_CHECK_FILE, METRICS_FILE,
                                         read_config_json, read_run_record)
from hfspeech.models.scores import is_multi_label
from hfspeech.hub.remote_code import module_sources, write_remote_code
from hfspeech.output_folders import folder_named, names_not_ours, not_a_folder, not_writable, unusable_folder_name
from hfspeech.output_staging import written_beside

MODEL_FILES = ("model.safetensors", "config.json", "preprocessor_config.json")
RUN_RECORDS = (METRICS_FILE, DATA_REPORT_FILE, HYPERPARAMETERS_FILE)
REPORT_FILES = (*RUN_RECORDS, *report_file_names("test"))  # the run's test report (`training.run`): the model's own
# kind and labels are staged (`hub.own_files.own_report_files`), an earlier run's left in the folder are not
# int8_check.json: the int8 file's accuracy check (numbers and a folder's name, no path): did the int8 file pass?
ONNX_FILES = ("model.onnx", "model_quantized.onnx", "ort_config.json", "config.json", "preprocessor_config.json",
              INT8_CHECK_FILE)


class StageError(HfspeechError, ValueError):
    """A run folder that cannot be staged; the message names the folder or file and the problem."""


def stage_run(run_dir: str | Path, dest: str | Path, repo_id: Optional[str] = None, include_onnx: bool = False,
              eval_dir: Optional[str | Path] = None, dataset_name: Optional[str] = None,
              token: Optional[str] = None, label_depth: Optional[int] = None,
              skip_bad_files: bool = False, license: Optional[str] = None) -> list[Path]:
    """Write the repo folder ``dest`` for the run in ``run_dir``; returns the staged files, sorted.

    ``eval_dir`` (an audio folder ``<label>/*.wav``) measures accuracy and latency of each variant (PyTorch,
    ONNX, int8) on the same clips; without it the card gives the run's own test metrics for PyTorch and
    says that the exported variants were not measured. A multi-label model's variants get only their
    latency there: folder names are not its label sets. ``dest`` is new, empty, or an earlier staging (replaced,
    as `hfspeech export` replaces its own export; a folder with anything else is refused). Everything is checked
    before the first file is written, and the repo is written into a scratch folder beside ``dest`` that
    replaces its content only once complete: a staging that fails leaves ``dest`` as it was, never half-staged
    (a folder that could be pushed by hand). ``token``: one more token the files must not hold.
    ``label_depth`` and ``skip_bad_files`` read ``eval_dir`` as training reads its folder
    (`inference.agreement.labelled_clips`). ``license``: a Hub license id for the card's metadata (`check_license`).
    Clips the run trained on and an int8 file kept after failing its check are warned and said in the card.
    """
    run, dest = Path(run_dir).resolve(), Path(dest)
    check_run(run, include_onnx)
    named = Path(os.path.abspath(run_dir)).name  # the card's name: the folder as given (`mcopy`, not its target)
    if repo_id is not None:
        check_repo_id(repo_id)
    if license is not None:
        check_license(license)
    if dataset_name is not None and (os.path.isabs(dataset_name) or os.path.exists(dataset_name)):
        raise StageError(f"--dataset {dataset_name}: a local path; the card's metadata takes the data set's name "
                         "(a Hub id such as `username/my-clips`), and local paths are not published")
    check_destination(dest)  # before the clips are decoded and their warnings printed
    config = read_config_json(run)
    reports, _ = own_report_files(run, config)  # an earlier run's, left in the folder, are warned and not staged
    labels = held_out_labels(config)  # a multi-label model's clips are only timed: any folder names
    try:
        clips = list(zip(*labelled_clips(eval_dir, labels, label_depth, skip_bad_files))) if eval_dir else []
    except HeldOutError as error:  # stage's own kind of refusal, as for its other inputs
        raise StageError(str(error)) from None
    notes = variant_warnings(run, clips, include_onnx)
    # a full disk names `dest`, not the run's file being copied (shutil's OSError names both, source first)
    with writing_to(dest, "nothing was staged (the folder is as it was); make room, or stage elsewhere"), \
            written_beside(dest, earlier=lambda name: name != "README.md", last="README.md".__eq__) as scratch:
        card = dict(eval_set=public_folder_name(eval_dir) if eval_dir else None, license=license,
                    eval_manifest=bool(eval_dir) and is_manifest(Path(eval_dir)))
        _write_repo(run, scratch, repo_id or f"your-name/{named}", include_onnx, clips, dataset_name, notes, run_dir,
                    reports, **card)
        check_no_secrets(scratch, run, [token] if token else [])
    return sorted(p for p in dest.rglob("*") if p.is_file())


def staged_names(dest: Path) -> Optional[set[str]]:
    """The names an earlier `hfspeech stage` wrote in ``dest`` (its own fixed files, onnx/ and the model code of
    its config's model type), or None when ``dest`` is not one: its README.md is no hfspeech card."""
    card = dest / "README.md"
    if not card.is_file():  # (ModelCard.load would take a missing file's path for a Hub repo id)
        return None
    try:
        tags = ModelCard(card.read_text(encoding="utf-8")).data.tags or []
    except Exception:  # not a model card (another tool's README, not text): not an earlier staging
        return None
    if "hfspeech" not in tags:
        return None
    try:  # a staging caught half-way through its replacement may lack config.json: then no code is its
        model_type = json.loads((dest / "config.json").read_text(encoding="utf-8")).get("model_type")
    except Exception:
        model_type = None
    spec = custom_classes(model_type) if isinstance(model_type, str) else None
    code = {name for cls in spec or () if cls is not None for name in module_sources(cls.__module__)}
    return {*MODEL_FILES, *REPORT_FILES, "README.md", "onnx", *code}


def check_destination(dest: Path) -> None:
    """``dest`` is new, empty, or an earlier staging with nothing of the user's beside it, which is replaced
    (as `hfspeech export` replaces its own earlier export); anything else is the user's and refused. A file in its
    path (`notes.txt/out`) is refused here too (`output_folders.not_a_folder`): it failed only when writing."""
    if (problem := unusable_folder_name(dest)) is not None:  # the staged model could not be loaded from it
        raise StageError(folder_named(dest, "", problem))
    problem = not_a_folder(dest)
    if problem is not None:
        raise StageError(f"{dest}: {problem}; give a new or empty folder")
    if (problem := not_writable(dest)) is not None:  # as export checks --output: before the work, not after it
        raise StageError(folder_named(dest, "", problem))
    if not dest.exists():
        return
    ours = staged_names(dest) or set()
    others = names_not_ours(dest, ours.__contains__)  # strict: the whole folder is replaced
    if "onnx" in ours and (dest / "onnx").is_dir():
        onnx_ours = {*ONNX_FILES, *(name for name in ours if name.endswith(".py"))}  # its model code is there too
        others += [f"onnx/{name}" for name in names_not_ours(dest / "onnx", onnx_ours.__contains__)]
    if others:
        what = "holds files `hfspeech stage` did not write" if ours else "holds other files, not an earlier staging"
        raise StageError(f"{dest}: {what} ({first_few(others)}); give a new or empty folder, or an earlier "
                         "`hfspeech stage` folder (it is replaced)")


def check_run(run: Path, include_onnx: bool) -> None:
    """A model folder with readable safetensors weights and run records that are JSON objects (the card reads
    them), and its ONNX export when asked for; a `StageError` naming the file otherwise."""
    from safetensors import safe_open

    from hfspeech.folder_writers import being_written
    from hfspeech.models.folder_checks import NotAModelError, check_model_folder
    from hfspeech.models.loading import check_model_name, unreadable_model_files

    try:
        check_model_name(run)  # not "damaged": a name that is not UTF-8 (or under LC_ALL=C, not ASCII)
        check_model_folder(str(run))
    except NotAModelError as error:
        raise StageError(str(error)) from None
    if being_written(run):  # a resumed run's earlier model and metrics were staged while it trained on (rc 0)
        raise StageError(f"{run}: a training run (or an average) is writing this folder now; stage it once the run "
                         "ends")
    if not (run / "model.safetensors").is_file():
        raise StageError(f"{run}: no model.safetensors; only safetensors weights are published")
    if (unreadable := unreadable_model_files(run)) is not None:  # another user's 0600 weights: not "damaged"
        raise StageError(unreadable)
    try:  # a truncated or damaged file was staged and published as it was
        with safe_open(run / "model.safetensors", framework="pt"):
            pass
    except Exception as error:
        raise StageError(f"{run / 'model.safetensors'}: damaged, not readable safetensors ({error})") from None
    for name in REPORT_FILES + ("trainer_state.json", RUN_INPUTS_FILE):  # the card reads them: a damaged one stops
        if name.endswith(".json") and not isinstance(read_run_record(run / name), dict):
            raise StageError(f"{run / name}: not a JSON object as hfspeech writes it; fix or delete it")
    if include_onnx and not (run / "onnx" / "model.onnx").is_file():  # was skipped without a word
        raise StageError(f"{run}: --include_onnx, but the run has no onnx/model.onnx; export it first "
                         f"(`hfspeech export {run} --format onnx`)")
    if include_onnx and (problem := onnx_problem(run)) is not None:  # a retrained run's old ONNX was published
        raise StageError(problem)


def _write_repo(run: Path, dest: Path, repo_id: str, include_onnx: bool, clips: list[tuple[str, str]],
                dataset_name: Optional[str], notes: list[str], run_dir: str | Path, reports: list[str],
                eval_set: Optional[str], license: Optional[str], eval_manifest: bool) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*MODEL_FILES, *RUN_RECORDS, *reports):
        _copy(run, name, dest / name, run_dir)
    if include_onnx:
        (dest / "onnx").mkdir()
        for name in ONNX_FILES:
            _copy(run, f"onnx/{name}", dest / "onnx" / name, run_dir)
    publish_records(dest, run)  # before the card, which reads the staged records
    config = json.loads((dest / "config.json").read_text(encoding="utf-8"))
    spec = custom_classes(config["model_type"])
    # onnx/ too: optimum's ORTModelForAudioClassification reads a local repo's `subfolder="onnx"` config from that
    # folder alone, and without the code and auto_map there could not load a baseline's (on the Hub, the root's)
    code_folders = ([dest, dest / "onnx"] if include_onnx else [dest]) if spec is not None else []
    for folder in code_folders:
        auto_map = write_remote_code(*spec, folder)
        _update_json(folder / "config.json", auto_map=auto_map["config"])
        if auto_map["feature_extractor"]:
            _update_json(folder / "preprocessor_config.json", auto_map=auto_map["feature_extractor"])
    variants = measure_variants(dest, clips, multi_label=is_multi_label(config), eval_set=eval_set,
                                eval_manifest=eval_manifest)
    write_model_card(run, dest, repo_id, variants, config, dataset_name,
                     custom_code=spec is not None, variant_notes=notes, license=license)


def check_repo_id(repo_id: str, flag: str = "--repo_id") -> None:
    """A repo id the Hub would refuse is one line before anything is staged, so `--dry_run` says so too
    (huggingface_hub's own rules: `name` or `namespace/name`, no spaces, `--` or `..`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise UsageError(f"{flag} {repo_id!r}: {error}") from None


def check_license(license: str) -> None:
    """A license as the Hub's metadata takes it: an id such as `apache-2.0`, `mit`, `cc-by-4.0` or `other`
    (lower case, digits, `.`, `-`, `+`: `openrail++`); a name in words would be written and flagged by the Hub as
    unknown."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+\-]*", license):
        lower = f" (lower case: {license.lower()}?)" if re.fullmatch(r"[a-z0-9][a-z0-9.+\-]*", license.lower()) else ""
        raise UsageError(f"--license {license!r}: not a Hub license id{lower} (such as apache-2.0, mit, cc-by-4.0, "
                         "other: https://huggingface.co/docs/hub/repositories-licenses)")


def custom_classes(model_type: str) -> Optional[tuple]:
    """(config, model, feature extractor or None) of an hfspeech model type that plain transformers lacks: the
    baselines and hfspeech's Whisper classifiers (whose extractor is transformers' own); None for the others."""
    from hfspeech.models import BASELINE_MODELS
    from hfspeech.models.whisper import configuration_clip_pooling as clip_pooling
    from hfspeech.models.whisper import configuration_label_scoring as label_scoring

    if model_type == label_scoring.MODEL_TYPE:
        from hfspeech.models.whisper.modeling_label_scoring import WhisperForLabelScoring

        return label_scoring.WhisperLabelScoringConfig, WhisperForLabelScoring, None
    if model_type == clip_pooling.MODEL_TYPE:
        from hfspeech.models.whisper.modeling_clip_pooling import WhisperClipPoolingForAudioClassification

        return clip_pooling.WhisperClipPoolingConfig, WhisperClipPoolingForAudioClassification, None
    return next((tuple(s) for s in BASELINE_MODELS.values() if s.config_class.model_type == model_type), None)


def _copy(run: Path, name: str, target: Path, run_dir: str | Path) -> None:
    """`run/name` copied to `target` (a link to a file inside `run` as that file); a link out of `run` (a Hub
    snapshot's, git-annex's or DVC's, into their object stores) is refused with the way out: every link was, and
    nothing said what to do. `run` is resolved: a run folder that is itself a link is the folder it links to."""
    source = run / name
    if not os.path.lexists(source):
        return
    real = Path(os.path.realpath(source))  # (`Path.resolve` raises RuntimeError on a link loop)
    if not real.is_relative_to(run):
        raise StageError(f"{source}: a link out of the run folder (to {real}); only files inside it are published: "
                         f"copy the run with its links followed (`cp -rL {shlex.quote(str(run_dir))} COPY`) and "
                         "stage the copy")
    if not real.is_file():
        problem = "not a plain file" if os.path.exists(source) else "a link that leads to no file (gone, or a loop)"
        raise StageError(f"{source}: {problem}; refusing to publish it")
    shutil.copyfile(real, target)


def _update_json(path: Path, **values) -> None:
    record = {**json.loads(path.read_text(encoding="utf-8")), **values}
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def hub_tokens() -> list[str]:
    """The tokens huggingface_hub would use (environment or stored login), for the leak check only."""
    from huggingface_hub import get_token

    candidates = [os.environ.get(k) for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")] + [get_token()]
    return [t for t in candidates if t and len(t) >= 8]


def check_no_secrets(dest: Path, run: Path, tokens: list[str]) -> None:
    """The last guard: no staged file holds a Hub token, or (text files) a local path of the user's."""
    tokens = [t for t in tokens if t and len(t) >= 8] + hub_tokens()
    for file in sorted(dest.rglob("*")):
        if file.is_file() and any(t.encode() in file.read_bytes() for t in tokens):
            raise StageError(f"{file.name}: contains the Hub token; nothing was staged")
    leak = local_path_in(dest, run)
    if leak is not None:
        raise StageError(f"{leak[0].relative_to(dest)}: contains the local path {leak[1]}; nothing was staged")
