"""Upload a staged run with huggingface_hub, from the CLI (``hfspeech push``) or at the end of training.

The token is never handled here beyond passing on one the caller was given (``--hub_token``): by default
``HfApi`` resolves it itself (``HF_TOKEN``, then ``huggingface-cli login``), so it is never written to a
file, the card or a log.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hfspeech.errors import HfspeechError, UsageError
from hfspeech.hub.card import AUGMENTATION, HYPERPARAMETERS
from hfspeech.hub.stage import stage_run
from hfspeech.models.config_json import HYPERPARAMETERS_FILE

logger = logging.getLogger("hfspeech.hub")


def push_run(run_dir: str | Path, repo_id: str, private: bool = False, revision: Optional[str] = None,
             include_onnx: bool = False, dry_run: bool = False, eval_dir: Optional[str] = None,
             dataset_name: Optional[str] = None, token: Optional[str] = None) -> list[str]:
    """Stage ``run_dir`` in a temporary folder and upload it to ``repo_id``; returns the repo paths uploaded
    (with ``dry_run``: that would be uploaded, and nothing is sent)."""
    check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="hfspeech-stage-") as tmp:
        staged = Path(tmp) / "repo"
        files = stage_run(run_dir, staged, repo_id=repo_id, include_onnx=include_onnx, eval_dir=eval_dir,
                          dataset_name=dataset_name)
        paths = [f.relative_to(staged).as_posix() for f in files]
        if dry_run:
            return paths
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=staged, revision=revision,
                          commit_message=f"Upload {Path(run_dir).name} with hfspeech")
    return paths


def check_repo_id(repo_id: str, flag: str = "--repo_id") -> None:
    """A repo id the Hub would refuse is one line before anything is staged, so `--dry_run` says so too
    (huggingface_hub's own rules: `name` or `namespace/name`, no spaces, `--` or `..`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise UsageError(f"{flag} {repo_id!r}: {error}") from None


@dataclass
class HubRequest:
    """What ``--push_to_hub`` asked for, taken off TrainingArguments so Trainer itself never pushes."""

    repo_id: str
    private: bool
    revision: Optional[str]
    token: Optional[str]


def hub_request(training_args) -> Optional[HubRequest]:
    """What `--push_to_hub` asked for, with the token, read before the arguments lose it: hfspeech stages and
    pushes the run itself at the end (Trainer's own push would upload checkpoints and the unstaged folder), so
    `training.arguments.finalise_training_arguments` turns Trainer's push off and drops every token field."""
    if not training_args.push_to_hub:
        return None
    found = token_fields(training_args)
    token = found.get("hub_token") or next(iter(found.values()), None)
    repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
    flag = "--hub_model_id" if training_args.hub_model_id else "--output_dir (its name)"
    check_repo_id(repo_id, flag)  # before training, not after it
    return HubRequest(repo_id, bool(training_args.hub_private_repo), getattr(training_args, "hub_revision", None),
                      token)


def token_fields(training_args) -> dict[str, str]:
    """Every string field whose name holds `token` (`hub_token`, the older `push_to_hub_token`), by name:
    Trainer pickles them into `training_args.bin` in the run folder and every checkpoint, and run folders
    get copied and shared, so they are set to None before training, pushing or not."""
    found = {}
    for name in fields_of(training_args):
        value = getattr(training_args, name, None)
        if "token" in name.lower() and isinstance(value, str):
            found[name] = value
    return found


def fields_of(arguments) -> list[str]:
    """The dataclass fields of an arguments object (TrainingArguments), or its attributes."""
    names = getattr(arguments, "__dataclass_fields__", None)
    return list(names) if names else list(vars(arguments))


def finish_run(model_args, data_args, training_args, request: Optional[HubRequest]) -> None:
    """Record the hyperparameters the card needs as JSON (training_args.bin is a pickle), then push if asked."""
    values = {**vars(model_args), **vars(data_args), **training_args.to_dict()}
    hyper = {k: values[k] for k in HYPERPARAMETERS if k in values}
    if values.get("model_name_or_path"):  # the checkpoint's type, not the ignored --model_type
        hyper.pop("model_type", None)
    hyper.update({k: values[k] for k in AUGMENTATION if values.get(k) is not None})
    hyper["lr_scheduler_type"] = str(getattr(hyper.get("lr_scheduler_type"), "value", hyper.get("lr_scheduler_type")))
    output_dir = Path(training_args.output_dir)
    (output_dir / HYPERPARAMETERS_FILE).write_text(json.dumps(hyper, indent=2, default=str) + "\n")
    if request is not None:
        try:
            paths = push_run(output_dir, request.repo_id, request.private, request.revision, token=request.token,
                             include_onnx=(output_dir / "onnx" / "model.onnx").is_file())
        except HfspeechError:
            raise
        except Exception as error:  # network, authentication, permissions: the run itself is complete
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise PushError(f"{output_dir}: trained and saved, but the push to {request.repo_id} failed "
                            f"({type(error).__name__}: {reason}); push it later with `hfspeech push {output_dir} "
                            f"--repo_id {request.repo_id}`") from error
        logger.info("pushed %d files to %s", len(paths), request.repo_id)


class PushError(HfspeechError):
    """A push to the Hub that failed; the message says what was saved and how to push it again."""
