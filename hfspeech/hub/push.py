"""Upload a staged run with huggingface_hub, from the CLI (``hfspeech push``) or at the end of training.

The token is never handled here beyond passing on one the caller was given (``--hub_token``): by default
``HfApi`` resolves it itself (``HF_TOKEN``, then ``hf auth login``), so it is never written to a
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
from hfspeech.hub.card_training import AUGMENTATION, HYPERPARAMETERS, options_set
from hfspeech.hub.stage import check_repo_id, hub_tokens, stage_run
from hfspeech.hub.own_files import onnx_problem
from hfspeech.models.config_json import HYPERPARAMETERS_FILE

logger = logging.getLogger("hfspeech.hub")


def push_run(run_dir: str | Path, repo_id: str, private: bool = False, revision: Optional[str] = None,
             include_onnx: bool = False, dry_run: bool = False, eval_dir: Optional[str] = None,
             dataset_name: Optional[str] = None, token: Optional[str] = None, label_depth: Optional[int] = None,
             skip_bad_files: bool = False, license: Optional[str] = None) -> list[str]:
    """Stage ``run_dir`` in a temporary folder and upload it to ``repo_id``; returns the repo paths uploaded
    (with ``dry_run``: that would be uploaded, and nothing is sent). A missing token stops it before staging;
    the Hub's refusals and an unreachable Hub are a `PushError` with huggingface_hub's reason on one line."""
    check_repo_id(repo_id)
    if not dry_run:
        check_token(token, "hfspeech push")
    with tempfile.TemporaryDirectory(prefix="hfspeech-stage-") as tmp:
        staged = Path(tmp) / "repo"
        files = stage_run(run_dir, staged, repo_id=repo_id, include_onnx=include_onnx, eval_dir=eval_dir,
                          dataset_name=dataset_name, token=token, label_depth=label_depth,
                          skip_bad_files=skip_bad_files, license=license)
        paths = [f.relative_to(staged).as_posix() for f in files]
        if dry_run:
            return paths
        try:
            _upload(staged, Path(run_dir).name, repo_id, private, revision, token)
        except HfspeechError:
            raise
        except (OSError, ValueError) as error:  # huggingface_hub's HTTP, connection and offline errors are OSErrors
            reason = failure_reason(error, token)
            raise PushError(f"{run_dir}: the push to {repo_id} failed ({reason})", reason) from None
    return paths


def _upload(staged: Path, name: str, repo_id: str, private: bool, revision: Optional[str],
            token: Optional[str]) -> None:
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    if private and not api.repo_info(repo_id).private:  # create_repo leaves an existing repo as it is
        raise PushError(f"--private: {repo_id} exists and is public, so the files would be public; nothing was "
                        "uploaded (make the repo private on the Hub first, or push without --private)")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=staged, revision=revision,
                      commit_message=f"Upload {name} with hfspeech")


def check_token(token: Optional[str], flag: str) -> None:
    """No token given and none huggingface_hub would find (HF_TOKEN, `hf auth login`): one line before
    anything is staged or trained, rather than the Hub's 401 after it."""
    from huggingface_hub import get_token

    if not token and not get_token():
        raise UsageError(f"{flag}: no Hugging Face token; set HF_TOKEN or run `hf auth login` "
                         "(a token with write access)")


def failure_reason(error: BaseException, token: Optional[str]) -> str:
    """The exception's type and first line, short, and without the token should a library have shown it."""
    reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
    for secret in [token] + hub_tokens():
        if secret:
            reason = reason.replace(secret, "<token>")
    return reason if len(reason) <= 300 else reason[:297] + "..."


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
    `training.finalised_arguments.finalise_training_arguments` turns Trainer's push off and drops every token field."""
    if not training_args.push_to_hub:
        return None
    found = token_fields(training_args)
    token = found.get("hub_token") or next(iter(found.values()), None)
    repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
    flag = "--hub_model_id" if training_args.hub_model_id else "--output_dir (its name)"
    check_repo_id(repo_id, flag)  # before training, not after it
    check_token(token, "--push_to_hub")
    return HubRequest(repo_id, bool(training_args.hub_private_repo), getattr(training_args, "hub_revision", None),
                      token)


def token_fields(training_args) -> dict[str, str]:
    """Every string field named `..._token` (`hub_token`, the older `push_to_hub_token`), by name: Trainer
    pickles them into `training_args.bin` in the run folder and every checkpoint, and run folders get copied
    and shared, so they are set to None before training, pushing or not. Only those: a field that merely holds
    the word (transformers 4.5x's `include_num_input_tokens_seen`, a string such as "no") is no credential;
    taken for one it was pushed with as the token, and set to None it turned on token counting."""
    found = {}
    for name in fields_of(training_args):
        value = getattr(training_args, name, None)
        if (name.lower() == "token" or name.lower().endswith("_token")) and isinstance(value, str):
            found[name] = value
    return found


def fields_of(arguments) -> list[str]:
    """The dataclass fields of an arguments object (TrainingArguments), or its attributes."""
    names = getattr(arguments, "__dataclass_fields__", None)
    return list(names) if names else list(vars(arguments))


def own_onnx(run: Path) -> bool:
    """Whether `--push_to_hub` takes the run's onnx/: only one exported from these weights, the rest warned (an
    export of an earlier run resumed since failed the whole push, after the training, which never asked for it)."""
    if not (run / "onnx" / "model.onnx").is_file():
        return False
    if (problem := onnx_problem(run)) is not None:
        logger.warning("warning: pushed without onnx/: %s", problem)
    return problem is None


def finish_run(model_args, data_args, training_args, request: Optional[HubRequest]) -> None:
    """Record the hyperparameters the card needs as JSON (training_args.bin is a pickle), then push if asked."""
    values = {**vars(model_args), **vars(data_args), **training_args.to_dict()}
    hyper = {k: values[k] for k in HYPERPARAMETERS if k in values}
    if values.get("model_name_or_path"):  # the checkpoint's type, not the ignored --model_type
        hyper.pop("model_type", None)
    hyper.update(options_set(values))
    hyper.update({k: values[k] for k in AUGMENTATION if values.get(k) is not None})
    hyper["lr_scheduler_type"] = getattr(training_args, "lr_schedule_followed", None) or str(  # a resume's lengths too
        getattr(hyper.get("lr_scheduler_type"), "value", hyper.get("lr_scheduler_type")))  # (training.lr_schedule)
    output_dir = Path(training_args.output_dir)
    (output_dir / HYPERPARAMETERS_FILE).write_text(json.dumps(hyper, indent=2, default=str) + "\n", encoding="utf-8")
    if request is not None:
        try:
            paths = push_run(output_dir, request.repo_id, request.private, request.revision, token=request.token,
                             include_onnx=own_onnx(output_dir))
        except PushError as error:  # network, authentication, permissions: the run itself is complete
            reason = error.reason
        except HfspeechError:
            raise
        except Exception as error:  # whatever else the Hub library raises: the run is complete all the same
            reason = failure_reason(error, request.token)
        else:
            logger.info("pushed %d files to %s", len(paths), request.repo_id)
            return
        raise PushError(f"{output_dir}: trained and saved, but the push to {request.repo_id} failed ({reason}); "
                        f"push it later with `hfspeech push {output_dir} --repo_id {request.repo_id}`", reason)


class PushError(HfspeechError):
    """A push to the Hub that failed; the message says what was saved and how to push it again, ``reason``
    what the Hub (or the network) answered."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message
