"""The recipe's command line as a careless user meets it: flag files (text, JSON, YAML) with mistakes in them,
flags that transformers users pass out of habit, and values that training cannot use. Each either works as
in transformers or is one line naming the flag (and the file), never a traceback or a silent no-op."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hfspeech.cli import main as cli
from hfspeech.errors import UsageError
from hfspeech.training.command_line import parse_args
from tests.conftest import TINY_CNN


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_json_and_yaml_flag_files_parse_typed_and_the_command_line_wins(tmp_path):
    yaml_file = write(tmp_path / "run.yaml", "num_train_epochs: 2\nlearning_rate: 1e-2\nfp16: yes\n"
                      "config_overrides: {\"n_mels\": 20}\nreport_to: [none]\n")
    model_args, _, training_args = parse_args(["--args_file", yaml_file, "--learning_rate", "0.3"])
    assert training_args.learning_rate == 0.3 and training_args.num_train_epochs == 2  # the command line wins
    assert training_args.fp16 is True and json.loads(model_args.config_overrides) == {"n_mels": 20}
    json_file = write(tmp_path / "run.json", json.dumps({"num_train_epochs": 3, "learning_rate": 0.01,
                                                          "output_dir": str(tmp_path / "out")}))
    _, _, training_args = parse_args([json_file, "--learning_rate", "0.2"])  # transformers' `script.py args.json`
    assert (training_args.learning_rate, training_args.num_train_epochs) == (0.2, 3)
    assert training_args.output_dir == str(tmp_path / "out")


FLAG_FILE_MISTAKES = {  # file name, content, what the one line says after the file's name
    "unknown JSON key": ("a.json", '{"num_epochs": 3}', "unknown key(s) ['num_epochs'] (did you mean ['num_train_epochs']?)"),
    "JSON value of the wrong type": ("b.json", '{"num_train_epochs": "abc"}', "invalid float value: 'abc'"),
    "invalid YAML": ("c.yaml", "learning_rate: [1e-3\n", "not valid YAML"),
    "YAML that is not a mapping": ("d.yml", "- --learning_rate\n- 1e-3\n", "expected a YAML mapping"),
    "two values for a one-value flag": ("e.json", '{"report_to": ["wandb", "none"]}', "--report_to takes one value"),
    "unknown flag in a flag file": ("f.args", "--num_train_epochs 1\n--bogus_flag 3\n", "unknown flag(s) ['--bogus_flag']"),
    "wrong choice in a flag file": ("g.args", "--lr_scheduler_type cosinus\n", "invalid choice: 'cosinus'"),
    "a value with spaces in a flag file": ("h.args", '--config_overrides {"n_mels": 40}\n', "['40}'] follow(s) no flag"),
}


@pytest.mark.parametrize("name", list(FLAG_FILE_MISTAKES))
def test_a_mistake_in_a_flag_file_names_the_file(name, tmp_path):
    file_name, content, message = FLAG_FILE_MISTAKES[name]
    path = write(tmp_path / file_name, content)
    with pytest.raises(UsageError) as error:
        parse_args(["--args_file", path, "--output_dir", str(tmp_path / "out")])
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value), error.value


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, the `error:` lines of stderr) of `hfspeech ARGV` (progress bars left out); anything escaping
    `main` (a traceback for the user) fails."""
    capsys.readouterr()
    try:
        code = cli(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, "\n".join(line for line in err.splitlines() if line.startswith("error: "))


HABIT_FLAGS = {  # flags of transformers' scripts, or values training cannot use -> what the one line says
    "unknown scheduler": (["--lr_scheduler_type", "bogus"], "invalid choice: 'bogus'"),
    "batch size 0": (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1"),
    "accumulation over 0 steps": (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at"),
    "negative learning rate": (["--learning_rate", "-1"], "--learning_rate must be >= 0"),
    "0 epochs": (["--num_train_epochs", "0", "--max_steps", "-1"], "--num_train_epochs must be above 0"),
    "--do_train False": (["--do_train", "False"], "this recipe always trains"),
    "unknown integration": (["--report_to", "wandbx"], "--report_to wandbx: not an integration of transformers"),
    "strategies that differ": (["--eval_strategy", "steps", "--eval_steps", "5"], "or pass --load_best_model_at_end False"),
    "a metric the run does not compute": (["--metric_for_best_model", "f1"], "--metric_for_best_model f1: not a "
                                          "metric of this run; choose from ['accuracy', 'balanced_accuracy', 'loss'"),
    "gradient checkpointing of a baseline": (["--gradient_checkpointing"], "--gradient_checkpointing: "
                                             "CNNAudioForAudioClassification does not support it"),
}


@pytest.mark.parametrize("name", list(HABIT_FLAGS))
def test_flags_training_cannot_use_are_one_line(name, tone_folder, tmp_path, capsys):
    flags, message = HABIT_FLAGS[name]
    code, err = run_cli(["train", "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"),
                         "--config_overrides", TINY_CNN, "--max_steps", "1", "--max_length_seconds", "0.5", *flags],
                        capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_report_to_an_integration_that_is_not_installed_is_one_line(tone_folder, tmp_path, capsys):
    from transformers.integrations import get_available_reporting_integrations

    if "wandb" in get_available_reporting_integrations():
        pytest.skip("wandb is installed here")
    code, err = run_cli(["train", "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"),
                         "--config_overrides", TINY_CNN, "--max_steps", "1", "--report_to", "wandb"], capsys)
    assert code == 2 and "--report_to wandb: wandb is not installed" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA machine may have bf16")
def test_bf16_without_a_gpu_says_how_to_use_the_cpu(tmp_path, monkeypatch):
    # transformers writes ACCELERATE_MIXED_PRECISION=bf16 into os.environ; monkeypatch takes it back afterwards
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)  # (tests/test_state_leak.py)
    with pytest.raises(UsageError, match=r"there is no CUDA GPU here; --bf16 --use_cpu"):
        parse_args(["--bf16", "--output_dir", str(tmp_path)])
    assert parse_args(["--bf16", "--use_cpu", "--output_dir", str(tmp_path)])[2].bf16


@pytest.mark.parametrize("flags, message", [(["--batch_size", "abc"], "invalid int value: 'abc'"),
                                            (["--data_dir", "d"], "the following arguments are required: --model")])
def test_evaluate_flag_mistakes_are_one_line(flags, message, capsys):
    """`hfspeech evaluate` parses the recipe's data flags: argparse printed some 40 lines of usage first."""
    run_cli(["evaluate", *flags], capsys)  # no traceback
    capsys.readouterr()
    assert cli(["evaluate", *flags]) == 2
    err = capsys.readouterr().err  # all of it: nothing is drawn before the error here
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("strategy", ["--save_strategy", "--eval_strategy"])
def test_a_strategy_of_no_trains_and_keeps_the_last_model(strategy, tone_folder, tmp_path, capsys):
    """transformers users turn checkpoints or evaluation off with `no`; hfspeech's default of keeping the best
    model (which needs both) refused it, naming a flag the user never gave."""
    out = tmp_path / "out"
    code, err = run_cli(["train", "--data_dir", str(tone_folder), "--output_dir", str(out), "--config_overrides",
                         TINY_CNN, "--max_steps", "2", "--per_device_train_batch_size", "8",
                         "--max_length_seconds", "0.5", strategy, "no"], capsys)
    assert code == 0, err
    assert (out / "model.safetensors").is_file() and "test_accuracy" in json.loads((out / "metrics.json").read_text())
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert not list(out.glob("checkpoint-*")) if strategy == "--save_strategy" else True
    _, _, explicit = parse_args(["--output_dir", str(out), strategy, "no", "--load_best_model_at_end", "False"])
    assert explicit.load_best_model_at_end is False
    with pytest.raises(UsageError, match="requires the save and eval strategy to match"):  # asked for: still refused
        parse_args(["--output_dir", str(out), strategy, "no", "--load_best_model_at_end", "True"])


def test_gradient_checkpointing_of_a_frozen_cached_encoder_is_dropped_not_a_crash(tone_folder, tmp_path):
    """`--freeze_base_model` trains the head from cached features: the Trainer called
    `gradient_checkpointing_enable` on the head's wrapper (AttributeError traceback)."""
    from hfspeech.synthetic.tiny import save_tiny_ssl_model
    from hfspeech.training.run import main

    checkpoint = save_tiny_ssl_model(tmp_path / "tiny", "wav2vec2", labels=["a", "b"])
    metrics = main(["--model_name_or_path", str(checkpoint), "--freeze_base_model", "--gradient_checkpointing",
                    "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "run"), "--max_steps", "2",
                    "--max_length_seconds", "0.5", "--per_device_train_batch_size", "8"])
    assert metrics["train_loss"] > 0 and (tmp_path / "run" / "model.safetensors").is_file()


class OtherProcessArguments:
    """A stand-in for TrainingArguments in process 1 of 2 (`should_log` False): the process, not the code, is faked."""

    should_log = False

    def __init__(self, log_level_replica: str):
        self.log_level_replica = log_level_replica


@pytest.mark.parametrize("replica_level, expected", [(None, logging.ERROR), ("info", logging.INFO)])
def test_other_processes_keep_hfspeech_quiet_unless_asked(replica_level, expected):
    """`accelerate launch --num_processes 2`: the classes, the model size and warnings were logged by every process."""
    from hfspeech.training.command_line import quiet_other_processes

    flags = ["--log_level_replica", replica_level] if replica_level else []
    _, _, training_args = parse_args(["--output_dir", "unused", *flags])
    hfspeech_logger = logging.getLogger("hfspeech")
    before = hfspeech_logger.level
    try:
        quiet_other_processes(OtherProcessArguments(training_args.log_level_replica))
        assert hfspeech_logger.getEffectiveLevel() == expected
    finally:
        hfspeech_logger.setLevel(before)


def test_two_processes_encode_frozen_features_once_and_log_once(tone_folder, tmp_path):
    """`accelerate launch --num_processes 2` of a linear probe: every process encoded every clip with the frozen
    encoder (for Whisper, minutes each, into the same cache files), and every process logged the run's lines."""
    import os
    import subprocess
    import sys

    from hfspeech.synthetic.tiny import save_tiny_ssl_model
    from tests.test_distributed import REPO, free_port

    checkpoint = save_tiny_ssl_model(tmp_path / "tiny", "wav2vec2", labels=["a", "b"])
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(free_port()), str(REPO / "recipes" / "finetune.py"), "--model_name_or_path", str(checkpoint),
               "--freeze_base_model", "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "run"),
               "--max_length_seconds", "0.5", "--per_device_train_batch_size", "4", "--num_train_epochs", "1",
               "--disable_tqdm", "False"]  # the bars, which show who encodes, are left out of a log otherwise
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    log = (result.stderr + result.stdout).replace("\r", "\n")
    assert result.returncode == 0, log[-4000:]
    assert log.count("encoding train once (frozen base):   0%") == 1, log[-4000:]
    assert log.count("hfspeech.train: 3 classes") == 1 and log.count("trainable") == 1, log[-4000:]
    assert (tmp_path / "run" / "model.safetensors").is_file()
