"""The other `--help`s (and mistyped flags) wait only for what their flags need, as `hfspeech train`'s does
(tests/test_startup39.py): `evaluate` for its flags' dataclasses (`evaluation.arguments`), not the scoring behind
them; `distill` and `cross-validate` for the recipe's flags, not `training.run`, the teachers or the pooled scoring;
`pretrained` for its table of checkpoints, not transformers' Whisper; `tiny-model` for its list of architectures,
not torch or transformers. Each help is checked unchanged by importing the rest after it.

All of them run in one fresh process, the model commands (which must not import torch) first.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_startup39 import LIGHTEST, STACK, run_groups_in_fresh_process, without_addresses

# what scoring and training bring beyond the flags
SCORING = ("evaluate", "audiomentations", "scipy", "sklearn", "librosa", "hfspeech.training.run",
           "hfspeech.inference.batch", "hfspeech.evaluation.report")

# command: (a mistyped flag, the flag it should have been or the mistyped one, the modules its help defers)
MODEL_COMMANDS = {
    "pretrained": (["whisper-tiny.en", "--lsit"], "--lsit",
                   ("transformers", "hfspeech.models.whisper.modeling_whisper",
                    "hfspeech.models.whisper.convert_ctranslate2")),
    "tiny-model": (["out", "--model_tipe", "whisper"], "--model_tipe",
                   ("transformers", "hfspeech.models.whisper.modeling_whisper", "hfspeech.synthetic.tiny")),
}
RECIPE_COMMANDS = {
    "evaluate": (["--model", "m", "--batch_sise", "2"], "--batch_size",
                 ("hfspeech.evaluation.evaluate_model", "hfspeech.evaluation.report")),
    "distill": (["--teacher", "t", "--distill_temprature", "2"], "--distill_temperature",
                ("hfspeech.training.run", "hfspeech.training.live_teacher", "hfspeech.training.teacher_cache")),
    "cross-validate": (["--num_foldz", "3"], "--num_folds",  # flags apart: cross_validation_args
                       ("hfspeech.training.run", "hfspeech.training.cross_validation",
                        "hfspeech.training.cross_validation_pooled")),
}


@pytest.fixture(scope="module")
def seen() -> dict:
    groups = [([[command, "--help"], [command, *typo]], LIGHTEST) for command, (typo, _, _) in MODEL_COMMANDS.items()]
    groups += [([[command, "--help"], [command, *typo]], STACK + SCORING)
               for command, (typo, _, _) in RECIPE_COMMANDS.items()]
    commands = {**MODEL_COMMANDS, **RECIPE_COMMANDS}
    deferred = tuple(dict.fromkeys(name for _, _, names in commands.values() for name in names))
    return dict(zip(commands, run_groups_in_fresh_process(groups, deferred)))


@pytest.mark.parametrize("command", list(RECIPE_COMMANDS))
def test_recipe_commands_help_and_a_mistyped_flag_leave_scoring_and_training_unimported(seen, command):
    typo, nearest, _ = RECIPE_COMMANDS[command]
    seen = seen[command]
    assert seen["loaded"] == []
    (help_code, help_text, _), (typo_code, _, typo_error) = seen["light"]
    assert help_code == 0 and f"usage: hfspeech {command}" in help_text and "--output_dir" in help_text
    assert typo_code == 2 and typo[-2] in typo_error and nearest in typo_error
    assert without_addresses(help_text) == without_addresses(seen["full"][1])


@pytest.mark.parametrize("command", list(MODEL_COMMANDS))
def test_model_commands_help_and_a_mistyped_flag_import_no_model_code(seen, command):
    """pretrained's help names its checkpoints (`models.whisper.pretrained`, whose CTranslate2 converter still
    imports torch at its top), tiny-model's its architectures (`synthetic.tiny.SSL_MODEL_TYPES`)."""
    _, mistyped, _ = MODEL_COMMANDS[command]
    seen = seen[command]
    assert seen["loaded"] == []
    (help_code, help_text, _), (typo_code, _, typo_error) = seen["light"]
    assert help_code == 0 and ("whisper-tiny.en" in help_text or "audio-spectrogram-transformer" in help_text)
    assert typo_code == 2 and mistyped in typo_error
    assert help_text == seen["full"][1]


def test_whisper_package_names_still_import_from_the_package_once_asked_for():
    """`hfspeech.models.whisper` gives `modeling_whisper`'s names when read (training's `model_setup`, the
    benchmarks), its submodules as before, and nothing else."""
    script = """
import sys
import hfspeech.models.whisper as whisper
assert "hfspeech.models.whisper.modeling_whisper" not in sys.modules and "transformers" not in sys.modules
from hfspeech.models.whisper import pretrained, prepare_whisper_classifier, window_seconds_for
from hfspeech.models.whisper import modeling_whisper
assert prepare_whisper_classifier is modeling_whisper.prepare_whisper_classifier
assert window_seconds_for is whisper.window_seconds_for and pretrained.PRETRAINED
try:
    from hfspeech.models.whisper import no_such_name
except ImportError as error:
    print("refused:", error)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused: cannot import name 'no_such_name'" in done.stdout
