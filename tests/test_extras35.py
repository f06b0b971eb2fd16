"""hfspeech installed without its extras (`pip install hfspeech`, no `[export]` or `[serve]`): a command that needs
one says so in one line naming the extra, and the commands that need none work (installed-package audit: `train`
and `demo` stopped with an optimum traceback after training, only to write the TorchScript copy)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from hfspeech.cli import main
from tests.conftest import save_random_baseline, write_tone_folder

CNN = {"conv_channels": [4, 8], "n_mels": 16}
NO_EXPORT_EXTRA = ["optimum", "onnxruntime", "onnx"]


def run_without(packages: list[str], argv: list[str], cwd) -> subprocess.CompletedProcess:
    """`hfspeech ARGV` in a fresh Python where importing any of `packages` fails as if it were not installed."""
    return run_all_without(packages, [argv], cwd)


def run_all_without(packages: list[str], commands: list[list], cwd) -> subprocess.CompletedProcess:
    """Each `hfspeech ARGV` of `commands` in turn, in one fresh Python where importing any of `packages` fails; the
    process exits with the last one's code and prints every code, as JSON, on its last line of stdout."""
    code = textwrap.dedent(f"""
        import json, sys
        for name in {packages!r}:
            sys.modules[name] = None  # `import name` now raises ModuleNotFoundError, as when it is absent
        from hfspeech.cli import main
        codes = [main(argv) for argv in {[[str(arg) for arg in argv] for argv in commands]!r}]
        print(json.dumps(codes))
        sys.exit(codes[-1])""")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_serve_without_the_serve_extra_is_one_line_naming_it(tmp_path):
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.5, **CNN)
    result = run_without(["starlette", "uvicorn"], ["serve", model], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hfspeech serve needs starlette"), lines
    assert "which could not be imported: install hfspeech's 'serve' extra (pip install \"hfspeech[serve]\"" in lines[0]


@pytest.fixture(scope="module")
def without_the_export_extra(tmp_path_factory):
    """A TorchScript export of a saved model and a training run, both in one process without optimum, onnxruntime
    and onnx: (the model, the run's folder, the process, its two exit codes)."""
    root = tmp_path_factory.mktemp("extras")
    model = save_random_baseline(root / "cnn", "cnn", ["a", "b"], 0.5, **CNN)
    data = write_tone_folder(root / "tones", clips_per_class=4, rates=(8000,))
    result = run_all_without(NO_EXPORT_EXTRA, [["export", model, "--format", "torchscript"], [
        "train", "--data_dir", data, "--output_dir", root / "run", "--model_type", "cnn", "--config_overrides",
        '{"conv_channels": [4, 8], "n_mels": 16}', "--num_train_epochs", "1", "--report_to", "none",
        "--per_device_train_batch_size", "4"]], root)
    assert result.stdout.strip(), result.stderr[-3000:]  # the codes, printed unless a command crashed the process
    return model, root / "run", result, json.loads(result.stdout.strip().splitlines()[-1])


def test_an_onnx_export_without_optimum_names_the_export_extra_and_torchscript_needs_none(tmp_path,
                                                                                         without_the_export_extra):
    model, _, torchscript, (torchscript_code, _) = without_the_export_extra
    onnx = run_without(["optimum"], ["export", model, "--format", "onnx"], tmp_path)
    assert onnx.returncode == 2, onnx.stderr[-3000:]
    assert len(onnx.stderr.strip().splitlines()) == 1 and "needs optimum" in onnx.stderr
    assert "'export' extra" in onnx.stderr
    assert torchscript_code == 0, torchscript.stderr[-3000:]
    assert (model / "torchscript" / "model.torchscript.pt").is_file()


def test_train_without_the_export_extra_writes_its_torchscript_copy(without_the_export_extra):
    _, run, result, (_, train_code) = without_the_export_extra
    assert train_code == 0, result.stderr[-3000:]
    assert (run / "torchscript" / "model.torchscript.pt").is_file()


def test_an_onnx_model_without_onnxruntime_names_the_extra_not_a_corrupt_file(tmp_path):
    """inference.loading called every failure to open an export "corrupt", onnxruntime's absence included."""
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["a", "b"], 0.5, **CNN)
    data = write_tone_folder(tmp_path / "tones", clips_per_class=1, rates=(8000,))
    assert main(["export", str(model), "--format", "onnx"]) == 0  # in this process: only predict's lacks onnxruntime
    clip = next(data.rglob("*.wav"))
    result = run_without(["onnxruntime"], ["predict", model / "onnx", clip], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "needs onnxruntime, which could not be imported" in result.stderr and "corrupt" not in result.stderr
