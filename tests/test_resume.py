"""Resume after SIGKILL, including kills inside a checkpoint save; refuse tampered or incomplete checkpoints.

The kills are real: `benchmarks/kill_resume.py --worker` runs `hfspeech train` in a subprocess that SIGKILLs
itself from inside `Trainer._save_checkpoint` (weights cut in half; optimizer written but no RNG state nor
trainer_state.json). The rerun is the same command, and must end with the same model as a run never
interrupted (clips as long as the crop, so a resumed run sees exactly the batches the uninterrupted one saw).
`benchmarks/kill_resume.py --kills 20` is the long version (random kill times as well).
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest

from hfspeech.cli import main
from hfspeech.training.checkpoints import incomplete_reason, last_complete_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kill_resume  # noqa: E402

EPOCHS = 4


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return kill_resume.write_data(tmp_path_factory.mktemp("resume") / "data", clips_per_class=8)


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert main(kill_resume.train_command(data_dir, output_dir, seed=0, epochs=EPOCHS)) == 0
    return output_dir


def metrics(output_dir: Path) -> dict:
    values = json.loads((output_dir / "metrics.json").read_text())
    return {k: values[k] for k in ("eval_loss", "test_accuracy", "test_macro_f1")}  # train_loss: this session's steps only


def test_killed_inside_saves_the_same_command_resumes_and_ends_as_an_uninterrupted_run(
        data_dir, uninterrupted, tmp_path, caplog):
    output_dir = tmp_path / "run"
    # 1st attempt: killed while saving its 2nd checkpoint, with model.safetensors half written.
    code, killed = kill_resume.attempt(data_dir, output_dir, 0, EPOCHS, kill_in_save="truncated_weights:2")
    assert killed, code
    found = kill_resume.checkpoints(output_dir)
    assert len(found["complete"]) == 1 and len(found["incomplete"]) == 1
    # 2nd attempt resumes from the 1st checkpoint and is killed in its first save, after the optimizer.
    code, killed = kill_resume.attempt(data_dir, output_dir, 0, EPOCHS, kill_in_save="after_optimizer:1")
    assert killed, code
    incomplete = kill_resume.checkpoints(output_dir)["incomplete"]
    assert incomplete == found["incomplete"]  # the same save, interrupted again
    # 3rd attempt, in this process: warns, removes the incomplete checkpoint, resumes, finishes.
    assert main(kill_resume.train_command(data_dir, output_dir, seed=0, epochs=EPOCHS)) == 0
    assert f"checkpoint-{incomplete[0]}: incomplete checkpoint" in caplog.text
    assert metrics(output_dir) == pytest.approx(metrics(uninterrupted), rel=1e-6)


def test_a_tampered_checkpoint_is_named_and_never_unpickled(data_dir, uninterrupted, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    checkpoint = Path(last_complete_checkpoint(str(run)))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (checkpoint / "optimizer.pt").write_bytes(pickle.dumps(Payload()))
    assert main(kill_resume.train_command(data_dir, run, seed=0, epochs=EPOCHS)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {checkpoint / 'optimizer.pt'}: refused by torch.load(weights_only=True)")
    assert not marker.exists()


def test_a_named_incomplete_checkpoint_is_an_error(data_dir, uninterrupted, tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint-3"
    shutil.copytree(last_complete_checkpoint(str(uninterrupted)), checkpoint)
    (checkpoint / "trainer_state.json").write_text('{"global_step": 3, "log_hist')  # cut short
    command = kill_resume.train_command(data_dir, tmp_path / "run", seed=0, epochs=EPOCHS)
    assert main(command + ["--resume_from_checkpoint", str(checkpoint)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {checkpoint}: incomplete checkpoint, trainer_state.json "
                                              "cannot be read")


def set_step(checkpoint: Path, step: int) -> None:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    (checkpoint / "trainer_state.json").write_text(json.dumps({**state, "global_step": step}))


def test_what_makes_a_checkpoint_incomplete(uninterrupted, tmp_path):
    complete = Path(last_complete_checkpoint(str(uninterrupted)))
    step = int(complete.name.split("-")[1])
    assert incomplete_reason(str(complete)) is None
    cases = {
        "no trainer_state.json": lambda c: (c / "trainer_state.json").unlink(),
        "trainer_state.json is for step": lambda c: set_step(c, step),  # another step's state
        "no model weights": lambda c: (c / "model.safetensors").unlink(),
        "model.safetensors cannot be read": lambda c: (c / "model.safetensors").write_bytes(
            (c / "model.safetensors").read_bytes()[:100]),
    }
    for index, (reason, damage) in enumerate(cases.items()):
        output_dir = tmp_path / f"case{index}"
        good, bad = output_dir / f"checkpoint-{step}", output_dir / f"checkpoint-{step + 1}"
        shutil.copytree(complete, good)
        shutil.copytree(complete, bad)
        set_step(bad, step + 1)
        assert incomplete_reason(str(bad)) is None
        damage(bad)
        assert incomplete_reason(str(bad)).startswith(reason), reason
        assert last_complete_checkpoint(str(output_dir)) == str(good)
        assert not bad.exists()  # removed, so that no later run picks it up


def resumable_run(uninterrupted: Path, tmp_path: Path) -> Path:
    """A run folder holding only the uninterrupted run's last checkpoint: a rerun resumes from it."""
    checkpoint = Path(last_complete_checkpoint(str(uninterrupted)))
    run = tmp_path / "run"
    shutil.copytree(checkpoint, run / checkpoint.name)
    return run


def relabelled(data_dir: Path, tmp_path: Path) -> Path:
    """The same clips with one class renamed: as many classes, other names, another order (high, hiss, low)."""
    other = tmp_path / "relabelled"
    shutil.copytree(data_dir, other)
    (other / "noise").rename(other / "hiss")
    return other


@pytest.mark.parametrize("change, difference", [
    (["--config_overrides", json.dumps({**json.loads(kill_resume.TINY_CNN), "n_mels": 8})], "n_mels 16 -> 8"),
    (["--model_type", "lstm", "--config_overrides", "{}"], "model_type 'hfspeech-cnn' -> 'hfspeech-lstm'"),
    (["--max_length_seconds", "0.25"], "max_length_seconds 0.5 -> 0.25"),
    ("relabelled", "labels ['high', 'low', 'noise'] -> ['high', 'hiss', 'low']"),
])
def test_resuming_with_another_model_or_labels_is_refused_in_one_line(
        data_dir, uninterrupted, tmp_path, capsys, change, difference):
    run = resumable_run(uninterrupted, tmp_path)
    data = relabelled(data_dir, tmp_path) if change == "relabelled" else data_dir
    command = kill_resume.train_command(data, run, seed=0, epochs=EPOCHS + 1)
    assert main(command + ([] if change == "relabelled" else change)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {last_complete_checkpoint(str(run))}: cannot resume"), error
    assert difference in error
    assert error.endswith("pass --overwrite_output_dir to start over, or use a new --output_dir")
    assert not (run / "config.json").exists()  # refused before a step was taken or a file written


def test_a_named_checkpoint_of_a_run_with_other_labels_is_refused(data_dir, uninterrupted, tmp_path, capsys):
    checkpoint = last_complete_checkpoint(str(resumable_run(uninterrupted, tmp_path / "other")))  # no run_inputs.json
    command = kill_resume.train_command(relabelled(data_dir, tmp_path), tmp_path / "run", seed=0, epochs=EPOCHS + 1)
    assert main(command + ["--resume_from_checkpoint", checkpoint]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {checkpoint}: cannot resume") and "labels ['high', 'low', 'noise']" in error
    assert error.endswith("name a checkpoint of this run or drop --resume_from_checkpoint")


def test_more_epochs_resume_and_a_new_learning_rate_is_said_to_be_unused(data_dir, uninterrupted, tmp_path, caplog):
    """transformers restores the optimizer and scheduler, whose rates win over --learning_rate: say so, record it."""
    run = resumable_run(uninterrupted, tmp_path)
    step = json.loads((uninterrupted / "trainer_state.json").read_text())["global_step"]
    command = kill_resume.train_command(data_dir, run, seed=0, epochs=EPOCHS + 1)
    assert main(command[:command.index("--learning_rate")] + ["--learning_rate", "0.5"]
                + command[command.index("--learning_rate") + 2:]) == 0
    assert "--learning_rate 0.5 is not used when resuming" in caplog.text
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] > step
    assert json.loads((run / "training_hyperparameters.json").read_text())["learning_rate"] == pytest.approx(1e-2)


@pytest.mark.parametrize("change, difference", [("copy", "data_dir"), (["--seed", "1"], "seed 0 -> 1"),
                                                ("pretrained", "model_name_or_path not given -> ")])
def test_resuming_on_other_data_with_the_same_labels_is_refused(data_dir, uninterrupted, tmp_path, capsys,
                                                                  change, difference):
    """Same labels, same config: only the run folder's run_inputs.json tells that the clips (one file longer, or
    the splits, or the pretrained start whose weights the checkpoint's would replace) differ."""
    run = resumable_run(uninterrupted, tmp_path)
    shutil.copy(uninterrupted / "run_inputs.json", run)
    data = shutil.copytree(data_dir, tmp_path / "copy") if change == "copy" else data_dir
    if change == "copy":  # other clips: an identical copy elsewhere is the same data moved, and resumes
        clip = sorted((tmp_path / "copy").rglob("*.wav"))[0]
        clip.write_bytes(clip.read_bytes() + b"\0\0")
    command = kill_resume.train_command(data, run, seed=0, epochs=EPOCHS + 1)
    assert main(command[:command.index("--seed")] + command[command.index("--seed") + 2:]
                + (change if isinstance(change, list) else
                   {"copy": ["--seed", "0"], "pretrained": ["--seed", "0", "--model_name_or_path", str(uninterrupted)]}
                   [change])) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {last_complete_checkpoint(str(run))}: cannot resume, its run had other "
                            f"data or start ({difference}"), error


def test_a_damaged_run_record_is_named_not_a_traceback(data_dir, uninterrupted, tmp_path, capsys):
    run = resumable_run(uninterrupted, tmp_path)
    (run / "run_inputs.json").write_text("{")
    assert main(kill_resume.train_command(data_dir, run, seed=0, epochs=EPOCHS + 1)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {run / 'run_inputs.json'}: not valid JSON"), error
