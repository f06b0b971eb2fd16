"""Publishing as a careless or unlucky user meets it: local paths in the run's records, damaged run folders,
a staging that fails half-way, pushing without a token or a network, `--private` on a public repo.

Nothing here reaches the Hub: huggingface_hub is put in offline mode (its constant and a fresh session) and
given an endpoint nothing listens on, or `HfApi` is replaced by a stand-in that records the calls.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY_CNN, write_tone_folder

from hfspeech.cli import main as cli
from hfspeech.errors import HfspeechError
from hfspeech.hub import StageError, push, stage_run

SECRET = "hf_AuditFakeToken0123456789abcdefghij"


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory) -> tuple[Path, Path]:
    """A run trained with --skip_bad_files on data under a user's home, which holds an empty and a corrupt
    WAV and a text file: (run folder, home folder)."""
    from hfspeech.training.run import main

    root = tmp_path_factory.mktemp("audit")
    home = root / "home" / "alice"
    data = write_tone_folder(home / "private" / "data", clips_per_class=6, rates=(16000,))
    (data / "low" / "broken.wav").write_bytes(b"not audio")
    (data / "high" / "empty.wav").write_bytes(b"")
    (data / "noise" / "notes.txt").write_text("recorded in the kitchen")
    run = home / "runs" / "tones"
    main(["--data_dir", str(data), "--output_dir", str(run), "--model_type", "cnn", "--config_overrides", TINY_CNN,
          "--num_train_epochs", "1", "--max_length_seconds", "0.5", "--per_device_train_batch_size", "8",
          "--skip_bad_files", "--save_total_limit", "1", "--report_to", "none"])
    return run, home


def copy_run(messy_run, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(messy_run[0], run)
    return run


def files_holding(folder: Path, text: str) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and text.encode() in p.read_bytes())


def test_staged_records_name_data_files_inside_the_data_folder_not_where_they_live(messy_run, tmp_path, monkeypatch):
    run, home = messy_run
    assert str(home) in (run / "data_report.json").read_text()  # the run's own record keeps them: it is local
    monkeypatch.setenv("HOME", str(home))
    repo = tmp_path / "repo"
    stage_run(run, repo, repo_id="alice/tones")
    assert files_holding(repo, str(home)) == [] and files_holding(repo, "alice/private") == []
    report = json.loads((repo / "data_report.json").read_text())
    skipped = [e["path"] for split in report["skipped"].values() for e in split]  # whichever splits they fell in
    assert sorted(skipped) == ["high/empty.wav", "low/broken.wav"]
    assert [e["path"] for e in report["ignored"]] == ["noise/notes.txt"]
    assert "low/broken.wav" in json.dumps(report["skipped"])  # the decoder's message names it the same way
    assert "files skipped as unusable: 2" in (repo / "README.md").read_text()


def test_a_local_checkpoint_is_published_by_its_folder_name(messy_run, tmp_path, monkeypatch):
    from transformers import HfArgumentParser, TrainingArguments

    from hfspeech.training.arguments import DataArguments, ModelArguments

    run, home = copy_run(messy_run, tmp_path), messy_run[1]
    start = home / "models" / "my-base"
    shutil.copytree(messy_run[0], start)
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    push.finish_run(*parser.parse_args_into_dataclasses([
        "--output_dir", str(run), "--data_dir", "clips", "--model_name_or_path", str(start), "--report_to", "none"]),
        None)
    monkeypatch.setenv("HOME", str(home))
    repo = tmp_path / "repo"
    stage_run(run, repo, repo_id="alice/tones")
    assert files_holding(repo, str(tmp_path)) == [] and files_holding(repo, str(home)) == []
    hyper = json.loads((repo / "training_hyperparameters.json").read_text())
    assert hyper["model_name_or_path"] == "my-base (a local checkpoint)"
    card = (repo / "README.md").read_text()
    assert "fine-tuned from local checkpoint `my-base`" in card and "base_model:" not in card


def test_damaged_weights_are_refused_before_anything_is_staged(messy_run, tmp_path, capsys):
    run = copy_run(messy_run, tmp_path)
    weights = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(weights[:-40])  # a copy cut short
    assert cli(["stage", str(run), str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run / 'model.safetensors'}: damaged") and "\n" not in err
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("name, content", [("data_report.json", "[1, 2]"), ("metrics.json", '"done"'),
                                           ("training_hyperparameters.json", "null")])
def test_a_record_that_is_not_a_json_object_is_named(messy_run, tmp_path, capsys, name, content):
    run = copy_run(messy_run, tmp_path)
    (run / name).write_text(content)
    assert cli(["stage", str(run), str(tmp_path / "repo")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {run / name}: not a JSON object as hfspeech writes it; "
                                               "fix or delete it")
    assert not (tmp_path / "repo").exists()


def test_the_card_says_which_test_metrics_are_missing_rather_than_inventing_them(messy_run, tmp_path):
    run = copy_run(messy_run, tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    measured_f1 = metrics["test_macro_f1"]
    del metrics["test_accuracy"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    stage_run(run, tmp_path / "missing")
    card = (tmp_path / "missing" / "README.md").read_text()
    assert f"accuracy missing from metrics.json, macro-F1 {measured_f1:.3f}" in card
    assert "type: accuracy" not in card and "type: f1" in card  # model-index: only what was measured

    (run / "metrics.json").write_text(json.dumps({**metrics, "test_accuracy": float("nan"), "test_macro_f1": None}))
    stage_run(run, tmp_path / "nan")
    card = (tmp_path / "nan" / "README.md").read_text()
    assert "accuracy not a number in metrics.json (nan), macro-F1 missing from metrics.json" in card
    assert "model-index" not in card


def test_a_staging_that_fails_half_way_leaves_nothing_behind(messy_run, tmp_path, capsys):
    run, clips = messy_run[0], tmp_path / "clips"
    (clips / "low").mkdir(parents=True)
    (clips / "low" / "bad.wav").write_bytes(b"RIFF but not audio")  # found, but fails when measured
    dest = tmp_path / "repo"
    assert cli(["stage", str(run), str(dest), "--eval_dir", str(clips)]) == 2
    assert "bad.wav" in capsys.readouterr().err
    assert not dest.exists()
    assert cli(["stage", str(run), str(dest)]) == 0  # so trying again works
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(["stage", str(run), str(empty), "--eval_dir", str(clips)]) == 2
    assert empty.is_dir() and list(empty.iterdir()) == []  # the user's empty folder stays, empty


@pytest.mark.parametrize("flags, message", [
    (["--repo_id", "alice/my tones"], "--repo_id 'alice/my tones': "),
    (["--dataset", "DATA"], "--dataset DATA: a local path"),
])
def test_stage_refuses_a_repo_id_or_data_set_name_it_cannot_publish(messy_run, tmp_path, capsys, flags, message):
    data = str(messy_run[1] / "private" / "data")
    flags = [data if flag == "DATA" else flag for flag in flags]
    assert cli(["stage", str(messy_run[0]), str(tmp_path / "repo"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: " + message.replace("DATA", data)) and "\n" not in err
    assert not (tmp_path / "repo").exists()


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """huggingface_hub offline, pointed at a port nothing listens on, with no stored login."""
    from huggingface_hub import constants
    from huggingface_hub.utils import reset_sessions

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-login" / "stored_tokens"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    reset_sessions()
    yield
    monkeypatch.undo()
    reset_sessions()


def test_push_without_a_token_stops_before_staging(messy_run, no_hub, capsys):
    assert cli(["push", str(messy_run[0]), "--repo_id", "alice/tones"]) == 2
    assert capsys.readouterr().err.strip() == ("error: hfspeech push: no Hugging Face token; set HF_TOKEN or run "
                                               "`hf auth login` (a token with write access)")
    assert cli(["push", str(messy_run[0]), "--repo_id", "alice/tones", "--dry_run"]) == 0  # sends nothing: no token


def test_push_that_cannot_reach_the_hub_is_one_line(messy_run, no_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert cli(["push", str(messy_run[0]), "--repo_id", "alice/tones", "--private"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and SECRET not in err
    assert err.startswith(f"error: {messy_run[0]}: the push to alice/tones failed (OfflineModeIsEnabled: ")


def test_push_to_hub_without_a_token_stops_before_training(tmp_path, no_hub, capsys):
    data = write_tone_folder(tmp_path / "data", clips_per_class=4, rates=(16000,))
    assert cli(["train", "--data_dir", str(data), "--output_dir", str(tmp_path / "run"), "--model_type", "cnn",
                "--push_to_hub", "--hub_model_id", "alice/tones"]) == 2
    assert "error: --push_to_hub: no Hugging Face token" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_only_token_fields_are_taken_for_the_hub_token(tmp_path, monkeypatch):
    """transformers' `include_num_input_tokens_seen` ("no") was pushed with as the token, in place of HF_TOKEN,
    and set to None, which switched token counting on."""
    from transformers import TrainingArguments

    from hfspeech.training.finalised_arguments import finalise_training_arguments

    monkeypatch.setenv("HF_TOKEN", SECRET)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), push_to_hub=True, hub_model_id="alice/tones",
                             report_to="none")
    counting = args.include_num_input_tokens_seen
    assert push.hub_request(args).token is None  # huggingface_hub then uses HF_TOKEN
    finalise_training_arguments(args, has_validation=True, multi_label=False)
    assert args.include_num_input_tokens_seen == counting and args.push_to_hub is False


class PublicRepoApi:
    """An `HfApi` stand-in whose repo already exists and is public; records the calls it gets."""

    calls: list = []

    def __init__(self, token=None):
        self.calls.append("init")

    def create_repo(self, repo_id, private=False, **kwargs):
        self.calls.append(("create_repo", private))

    def repo_info(self, repo_id, **kwargs):
        return SimpleNamespace(private=False)

    def upload_folder(self, **kwargs):
        self.calls.append("upload_folder")


def test_private_push_into_an_existing_public_repo_uploads_nothing(messy_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr("huggingface_hub.HfApi", PublicRepoApi)
    PublicRepoApi.calls = []
    with pytest.raises(HfspeechError, match=r"--private: alice/tones exists and is public"):
        push.push_run(messy_run[0], "alice/tones", private=True)
    assert "upload_folder" not in PublicRepoApi.calls and ("create_repo", True) in PublicRepoApi.calls


def test_the_token_passed_to_push_is_looked_for_in_the_staged_files(messy_run, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    run = copy_run(messy_run, tmp_path)
    hyper = json.loads((run / "training_hyperparameters.json").read_text())
    (run / "training_hyperparameters.json").write_text(json.dumps({**hyper, "seed": SECRET}))  # a careless edit
    with pytest.raises(StageError, match="contains the Hub token; nothing was staged"):
        push.push_run(run, "alice/tones", dry_run=True, token=SECRET)
