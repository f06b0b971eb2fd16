"""A corpus of bad, unusual and hostile inputs through `train`, `evaluate`, `predict` and `export`.

Every case is generated here (nothing committed as binaries) and run through the CLI in-process
(`hfspeech.cli.main`), with and without `--skip_bad_files`. Each one must either work -- and then every
audio file found is used or skipped and counted, with the labels as written -- or stop with exit code 2 and
one line `error: ...` naming the file (or folder, or flag); never a traceback, never exit 0 with fewer
files or other labels than the input has without saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_CNN

from hfspeech.cli import main
from hfspeech.synthetic.signals import synth_tone_clip

TONES = {"low": 300.0, "high": 2500.0, "noise": None}
FAST_TRAINING = ["--model_type", "cnn", "--config_overrides", TINY_CNN, "--max_steps", "1",
                 "--per_device_train_batch_size", "4", "--max_length_seconds", "0.5", "--eval_strategy", "no",
                 "--save_strategy", "no", "--load_best_model_at_end", "False"]


def clip(label: str, index: int, rate: int = 16000, seconds: float = 0.5) -> np.ndarray:
    return synth_tone_clip(TONES.get(label, 1000.0), np.random.default_rng(index), rate, seconds, jitter=0.02,
                           noise=0.01)


def write_folder(root: Path, labels=tuple(TONES), per_class: int = 4, ext: str = "wav") -> Path:
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sf.write(root / label / f"{label}_{i}.{ext}", clip(label, i), 16000)
    return root


@dataclass
class Case:
    """`build(root)` makes the input and returns the data flags; `error`: the text the one-line error must
    contain (None: the run works); `skip_error`: the same with --skip_bad_files (default: `error`, unless
    `skipped` bad files are expected, which are then counted); `labels`: the classes the run must find."""

    build: Callable[[Path], list[str]]
    error: Optional[str] = None
    skipped: int = 0
    labels: Optional[set] = None
    skip_error: Optional[str] = "same"
    commands: tuple = ("train", "evaluate")
    extra: list = field(default_factory=list)


def folder_case(edit: Callable[[Path], None], **kwargs) -> Case:
    def build(root: Path) -> list[str]:
        write_folder(root / "data")
        edit(root / "data")
        return ["--data_dir", str(root / "data")]
    return Case(build, **kwargs)


def bad_file(content: Callable[[Path], None], problem: str) -> Case:
    """A bad audio file among good ones: an error without --skip_bad_files, skipped and counted with it."""
    def edit(data: Path) -> None:
        content(data / "low" / "bad.wav")
    return folder_case(edit, error=f"bad.wav: {problem}", skipped=1, skip_error=None)


def nan_wav(path: Path) -> None:
    samples = np.full(8000, np.nan, np.float32)
    sf.write(path, samples, 16000, subtype="FLOAT")


def header_only_wav(path: Path) -> None:
    sf.write(path, np.zeros(0, np.float32), 16000)


def truncated_wav(path: Path) -> None:
    sf.write(path, clip("low", 9), 16000)
    path.write_bytes(path.read_bytes()[:30])


def truncated_audio_wav(path: Path) -> None:
    """A 0.5-s clip cut to 300 bytes: its header is whole, and decoders read the 128 samples there without a word."""
    sf.write(path, clip("low", 9), 16000)
    path.write_bytes(path.read_bytes()[:300])


def symlink(target: str, link: Path) -> None:
    os.symlink(target, link)


def manifest_case(text: str | bytes, name: str = "train.csv", **kwargs) -> Case:
    """A manifest beside a folder of clips; `<low_0>` in `text` stands for that clip's relative path."""
    def build(root: Path) -> list[str]:
        write_folder(root / "clips")
        content = text
        for label in TONES:
            for i in range(4):
                placeholder, path = f"<{label}_{i}>", f"clips/{label}/{label}_{i}.wav"
                content = content.replace(placeholder.encode() if isinstance(content, bytes) else placeholder,
                                          path.encode() if isinstance(content, bytes) else path)
        (root / name).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return ["--train_file", str(root / name)]
    return Case(build, **kwargs)


ROWS = "".join(f"<{label}_{i}>,{label}\n" for label in TONES for i in range(4))
CASES = {
    # audio folders: files the builder would drop, links, layouts
    "plain folder": folder_case(lambda d: None, labels=set(TONES)),
    "aif and AIFF files": folder_case(lambda d: [sf.write(d / "high" / f"h{i}.{e}", clip("high", i), 16000,
                                                          format="AIFF") for i, e in enumerate(("aif", "AIFF"))],
                                      labels=set(TONES)),
    "upper-case .WAV": folder_case(lambda d: sf.write(d / "low" / "LOUD.WAV", clip("low", 7), 16000),
                                   labels=set(TONES)),
    "flac, ogg and mp3": folder_case(lambda d: [sf.write(d / "noise" / f"n.{e}", clip("noise", 5), 16000)
                                                for e in ("flac", "ogg", "mp3")], labels=set(TONES)),
    "a link to a file": folder_case(lambda d: symlink(str(d / "low" / "low_0.wav"), d / "low" / "link.wav"),
                                    labels=set(TONES)),
    "a dangling link": folder_case(lambda d: symlink("/nonexistent/x.wav", d / "low" / "gone.wav"),
                                   error="gone.wav: broken symbolic link", skipped=1, skip_error=None),
    "a link to a folder listed already": folder_case(lambda d: symlink(str(d / "high"), d / "high2")),
    "a folder link loop": folder_case(lambda d: symlink(str(d / "low"), d / "low" / "again"),
                                      labels=set(TONES)),
    "nested speaker folders": folder_case(
        lambda d: [(d / "low" / "spk1").mkdir(), shutil.move(str(d / "low" / "low_0.wav"), d / "low" / "spk1")],
        error="nested 2 folders deep"),
    "nested, --label_depth 1": Case(
        lambda root: ["--data_dir", str(write_nested(root / "data")), "--label_depth", "1"], labels=set(TONES)),
    "nested, --label_depth 3 too deep": Case(
        lambda root: ["--data_dir", str(write_nested(root / "data")), "--label_depth", "3"],
        error="--label_depth 3 takes the label from folder 3"),
    "class folders named train and test": folder_case(
        lambda d: [write_folder(d, labels=("train", "test"), per_class=2)], labels={*TONES, "train", "test"},
        commands=("train",)),
    "split words in file names": folder_case(
        lambda d: [sf.write(d / "low" / f"{w}_01.wav", clip("low", 8), 16000) for w in ("train", "test", "dev")],
        labels=set(TONES)),
    "split folders": Case(lambda root: ["--data_dir", str(write_splits(root / "data"))], labels=set(TONES)),
    "split folders beside a class folder": Case(
        lambda root: ["--data_dir", str(write_folder(write_splits(root / "data"), labels=("low",)))],
        error="beside class folder(s) ['low']"),
    "hidden and macOS files": folder_case(
        lambda d: [(d / ".DS_Store").write_bytes(b"\0" * 10), (d / "low" / "._low_0.wav").write_bytes(b"\0\5"),
                   (d / "__MACOSX").mkdir(), (d / "__MACOSX" / "x.wav").write_bytes(b"x")], labels=set(TONES)),
    "non-audio files": folder_case(
        lambda d: [(d / "notes.txt").write_text("hi"), (d / "low" / "cover.png").write_bytes(b"\x89PNG")],
        labels=set(TONES)),
    "loose audio in the root": folder_case(lambda d: sf.write(d / "loose.wav", clip("low", 1), 16000),
                                           error="have no label (e.g. loose.wav)"),
    "no audio at all": Case(lambda root: ["--data_dir", str(make_dir(root / "data" / "low").parent)],
                            error="no audio files"),
    "missing data folder": Case(lambda root: ["--data_dir", str(root / "absent")], error="absent: audio folder not found"),
    "data_dir is a file": Case(lambda root: ["--data_dir", str(write_text(root / "f.wav", "x"))],
                               error="f.wav: a file, not an audio folder"),
    "no data source": Case(lambda root: [], error="give exactly one data source"),
    "label folder with a trailing space": folder_case(lambda d: write_folder(d, labels=("high ",), per_class=2),
                                                      labels=set(TONES)),
    "unicode and spaces in names": folder_case(
        lambda d: [write_folder(d, labels=("日本 ñ",), per_class=2),
                   sf.write(d / "low" / "a b,c;d.wav", clip("low", 3), 16000)], labels={*TONES, "日本 ñ"},
        commands=("train",)),
    "mixed rates, stereo, 8 and 24 bit": folder_case(
        lambda d: [sf.write(d / "low" / "s.wav", np.stack([clip("low", 1, 8000)] * 2, 1), 8000),
                   sf.write(d / "high" / "b8.wav", clip("high", 2, 44100), 44100, subtype="PCM_U8"),
                   sf.write(d / "noise" / "b24.wav", clip("noise", 3, 22050), 22050, subtype="PCM_24")],
        labels=set(TONES)),
    "one-sample, silent and long clips": folder_case(
        lambda d: [sf.write(d / "low" / "one.wav", np.full(1, 0.1, np.float32), 16000),
                   sf.write(d / "high" / "silent.wav", np.zeros(8000, np.float32), 16000),
                   sf.write(d / "noise" / "long.wav", clip("noise", 4, seconds=6.0), 16000)], labels=set(TONES)),
    # bad audio files
    "random bytes": bad_file(lambda p: p.write_bytes(os.urandom(2000)), "cannot be decoded as audio"),
    "empty file": bad_file(lambda p: p.write_bytes(b""), "file is empty (0 bytes)"),
    "truncated header": bad_file(truncated_wav, "cannot be decoded as audio"),
    "truncated audio": bad_file(truncated_audio_wav, "truncated WAV: header declares 16000 bytes of audio, "
                                                     "file holds 256"),
    "NaN samples": bad_file(nan_wav, "audio contains NaN or infinite samples"),
    "zero-length audio": bad_file(header_only_wav, "audio has zero length (no samples)"),
    "text named .wav": bad_file(lambda p: p.write_text("not audio at all"), "cannot be decoded as audio"),
    "an empty folder named .wav": folder_case(lambda d: (d / "low" / "dir.wav").mkdir()),
    # manifests: labels as written, dialects
    "CSV labels with leading zeros": manifest_case("path,label\n" + "".join(
        f"<{label}_{i}>,{code}\n" for label, code in zip(TONES, ("0012", "0034", "007")) for i in range(4)),
        labels={"0012", "0034", "007"}, commands=("train",)),
    "CSV with a byte-order mark and CRLF": manifest_case("\ufeffpath,label\r\n" + ROWS.replace("\n", "\r\n"),
                                                         labels=set(TONES)),
    "semicolon CSV": manifest_case("path;label\n" + ROWS.replace(",", ";"), labels=set(TONES)),
    "quoted commas": manifest_case('"path","label"\n' + "".join(f'"<{label}_{i}>","{label}"\n' for label in TONES
                                                                for i in range(4)), labels=set(TONES)),
    "Windows backslash paths": manifest_case("path,label\n" + ROWS.replace("/", "\\"), labels=set(TONES)),
    "TSV": manifest_case("path\tlabel\n" + ROWS.replace(",", "\t"), name="train.tsv", labels=set(TONES)),
    "labels with spaces": manifest_case("path,label\n" + ROWS.replace(",low", ", low "), labels=set(TONES)),
    "Latin-1 CSV": manifest_case("path,label\n<low_0>,bas\u00e9\n".encode("latin-1"), error="not UTF-8"),
    "no label column": manifest_case("path,kind\n" + ROWS, error="missing column(s) ['label']"),
    "no path column": manifest_case("file,label\n" + ROWS, error="missing column(s) ['path']"),
    "an empty label": manifest_case("path,label\n" + ROWS + "<low_1>,\n", error="empty label"),
    "a missing file": manifest_case("path,label\n" + ROWS + "clips/nope.wav,low\n", error="nope.wav"),
    "a ragged row": manifest_case("path,label\n" + ROWS + "<low_1>,low,extra\n", error="row 13 has 3 cells"),
    "JSONL with numbers as labels": manifest_case("".join(f'{{"path": "<{label}_{i}>", "label": {n}}}\n'
                                                          for n, label in enumerate(TONES) for i in range(4)),
                                                  name="train.jsonl", labels={"0", "1", "2"}, commands=("train",)),
    "malformed JSONL line": manifest_case('{"path": "<low_0>", "label": "low"}\n{"path": oops}\n',
                                          name="train.jsonl", error="line 2 is not valid JSON"),
    "unknown manifest type": manifest_case("x", name="train.xlsx", error="unknown manifest format"),
}


def write_nested(root: Path) -> Path:
    for label in TONES:
        for speaker in ("s1", "s2"):
            (root / label / speaker).mkdir(parents=True, exist_ok=True)
            for i in range(2):
                sf.write(root / label / speaker / f"{i}.wav", clip(label, i), 16000)
    return root


def write_splits(root: Path) -> Path:
    write_folder(root / "train")
    write_folder(root / "test", per_class=2)
    return root


def make_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of `hfspeech ARGS` in this process; an exception escaping `main` fails the test."""
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    except Exception as error:  # noqa: BLE001 -- what a user would see as a traceback
        pytest.fail(f"hfspeech {' '.join(args[:1])} raised {type(error).__name__}: {error}")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def audio_files_in(flags: list[str]) -> int:
    """How many audio files (links included) the input holds: what must be used or accounted for."""
    from hfspeech.data.folders import walk_audio_files

    if "--data_dir" in flags:
        return len(walk_audio_files(Path(flags[flags.index("--data_dir") + 1]))[0])
    from hfspeech.data.manifests import read_manifest

    return len(read_manifest(flags[flags.index("--train_file") + 1])[0])


def check(case: Case, command: str, flags: list[str], skip: bool, tmp_path: Path, model: Path, capsys) -> None:
    out = tmp_path / f"{command}-{skip}"
    args = ([command, *flags, "--output_dir", str(out), *FAST_TRAINING] if command == "train" else
            [command, "--model", str(model), *flags, "--output_dir", str(out)])
    args += ["--skip_bad_files"] * skip + case.extra
    code, err = run_cli(args, capsys)
    error = case.error if not skip or case.skip_error == "same" else case.skip_error
    if error is not None:
        assert code == 2, err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and error in lines[0], err
        return
    assert code == 0, err
    report = json.loads((out / "data_report.json").read_text())
    found = audio_files_in(flags)
    assert report["num_found"] == found
    assert report["num_skipped"] == (case.skipped if skip else 0)
    if command == "train":
        assert report["num_kept"] + report["num_skipped"] == found
        assert set(json.loads((out / "metrics.json").read_text())["labels"]) == (case.labels or set(TONES))
    else:
        metrics = json.loads(next(out.glob("*_metrics.json")).read_text())
        assert metrics["num_clips"] + metrics["num_skipped_files"] == report["found"][metrics["split"]]
        assert len(report["found"]) == 1 or any("not evaluated" in note for note in report["notes"])


@pytest.mark.parametrize("skip", [False, True], ids=["strict", "skip_bad_files"])
@pytest.mark.parametrize("name", list(CASES))
def test_data_inputs(name, skip, tmp_path, trained_cnn, capsys):
    case = CASES[name]
    flags = case.build(tmp_path)
    for command in case.commands:
        if skip and command == "train" and not case.skipped and case.error is None:
            continue  # no bad file: --skip_bad_files changes nothing (evaluate checks it, at a fraction of the time)
        check(case, command, flags, skip, tmp_path, trained_cnn, capsys)


def broken_model(edit: Callable[[Path], None]) -> Callable[[Path, Path], Path]:
    def build(model: Path, tmp_path: Path) -> Path:
        copy = tmp_path / "model"
        shutil.copytree(model, copy, ignore=shutil.ignore_patterns("checkpoint-*"))
        edit(copy)
        return copy
    return build


MODEL_CASES = {
    "no such folder": (lambda model, tmp: tmp / "no" / "such" / "model", "model folder not found"),
    "no such export": (lambda model, tmp: tmp / "no" / "model.onnx", "model.onnx: exported model file not found"),
    "a file, not a folder": (lambda model, tmp: write_text(tmp / "model.txt", "x"), "not a model folder"),
    "an empty folder": (lambda model, tmp: make_dir(tmp / "empty"), "no config.json"),
    "truncated weights": (broken_model(lambda m: (m / "model.safetensors").write_bytes(
        (m / "model.safetensors").read_bytes()[:1000])), "model.safetensors: corrupt"),
    "config not JSON": (broken_model(lambda m: (m / "config.json").write_text("{oops")), "not valid JSON"),
    "labels do not fit the head": (broken_model(lambda m: (m / "config.json").write_text(json.dumps(
        {**json.loads((m / "config.json").read_text()), "id2label": {str(i): str(i) for i in range(5)},
         "label2id": {str(i): i for i in range(5)}}))), "5 labels in id2label"),
    "no feature extractor": (broken_model(lambda m: (m / "preprocessor_config.json").unlink()),
                             "preprocessor_config.json"),
}


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_model_inputs(name, tmp_path, trained_cnn, tone_folder, capsys):
    build, error = MODEL_CASES[name]
    model = str(build(trained_cnn, tmp_path))
    a_clip = str(next(tone_folder.glob("low/*.wav")))
    for args in (["predict", model, a_clip], ["export", model, "--format", "torchscript",
                                               "--output", str(tmp_path / "export")],
                 ["evaluate", "--model", model, "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "e")]):
        code, err = run_cli(args, capsys)
        assert code == 2 and err.startswith("error: ") and error in err and len(err.strip().splitlines()) == 1, err


PREDICT_FILES = {
    "missing file": (lambda tmp: tmp / "absent.wav", "file not found"),
    "dangling link": (lambda tmp: (symlink("/nonexistent.wav", tmp / "gone.wav"), tmp / "gone.wav")[1],
                      "broken symbolic link"),
    "a folder": (lambda tmp: make_dir(tmp / "dir.wav"), "is a folder"),
    "random bytes": (lambda tmp: (tmp / "r.wav").write_bytes(os.urandom(500)) and tmp / "r.wav", "cannot be decoded"),
    "empty": (lambda tmp: write_text(tmp / "e.wav", ""), "file is empty"),
    "truncated wav": (lambda tmp: (truncated_audio_wav(tmp / "t.wav"), tmp / "t.wav")[1],
                      "truncated WAV: header declares 16000 bytes of audio, file holds 256"),
}


@pytest.mark.parametrize("name", list(PREDICT_FILES))
def test_predict_names_each_bad_file_and_goes_on(name, tmp_path, trained_cnn, tone_folder, capsys):
    make, problem = PREDICT_FILES[name]
    bad = str(make(tmp_path))
    good = str(next(tone_folder.glob("high/*.wav")))
    code, err = run_cli(["predict", str(trained_cnn), bad, good], capsys)
    assert code == 1  # as documented: the good file is classified, the bad one named, the exit code says so
    *named, count = err.strip().splitlines()  # then the count, as --output FILE's summary gives it
    assert count == "1 of 2 files could not be read or decoded (each named above)", err
    assert named == [f"error: {bad}: {problem}"] or (len(named) == 1 and named[0].startswith(f"error: {bad}: "
                                                                                              f"{problem}")), err


FLAG_CASES = {
    "save steps without eval steps": (["--save_strategy", "steps"], "requires the save and eval strategy"),
    "unknown flag": (["--no_such_flag", "1"], "unknown flag(s) ['--no_such_flag']"),
    "bad --noise_snr_db": (["--noise_snr_db", "loud"], "comma-separated numbers"),
    "bad --config_overrides JSON": (["--config_overrides", "{n_mels: 8}"], "--config_overrides: not a JSON object"),
    "bad config value": (["--config_overrides", '{"pooling": "median"}'], "pooling must be one of"),
    "unknown --model_type": (["--model_type", "transformerxl"], "unknown --model_type"),
    "missing --resume_from_checkpoint": (["--resume_from_checkpoint", "/no/ckpt"], "folder not found"),
    "missing --model_name_or_path": (["--model_name_or_path", "/no/such/model"], "model folder not found"),
    "oversample with group_by_length": (["--oversample", "--group_by_length"], "use one of them"),
    "missing --args_file": (["--args_file", "/no/args.txt"], "--args_file not found"),
    "misspelt --config_overrides key": (["--config_overrides", '{"conv_channelz": [4]}'],
                                        "unknown key(s) ['conv_channelz'] for model_type 'hfspeech-cnn'"),
    "reversed --vtlp_warp": (["--vtlp_warp", "1.1,0.9"], "vtlp_warp must be finite with -inf <= low <= high"),
    "negative --pitch_semitones": (["--pitch_semitones", "-2"], "pitch_semitones must be a positive number"),
    "--reverb_prob above 1": (["--reverb_prob", "1.5"], "reverb_prob must be in [0, 1]"),
    "negative --max_length_seconds": (["--max_length_seconds", "-1"], "--max_length_seconds must be >= 0"),
    "no training clip": (["--max_train_samples", "0"], "--max_train_samples must be at least 1"),
    "held-out share over 100%": (["--validation_split_percentage", "150"], "--validation_split_percentage and"),
    "label words for a baseline": (["--score_label_words", "True"], "--score_label_words: for Whisper checkpoints"),
}


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_training_flags(name, tmp_path, tone_folder, capsys):
    flags, error = FLAG_CASES[name]
    base = ["train", "--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "out"), "--max_steps", "1",
            "--model_type", "cnn", "--config_overrides", TINY_CNN]
    code, err = run_cli(base + flags, capsys)
    assert code == 2 and error in err, err


def test_an_output_dir_with_files_of_the_user_is_not_written_over(tmp_path, tone_folder, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    code, err = run_cli(["train", "--data_dir", str(tone_folder), "--output_dir", str(out), *FAST_TRAINING], capsys)
    assert code == 2 and err.startswith(f"error: --output_dir {out}: holds other files (config.json), not from a training run")
    assert (out / "config.json").read_text() == '{"mine": true}' and sorted(os.listdir(out)) == ["config.json"]


def test_debug_shows_the_traceback_and_a_subprocess_shows_one_line(tmp_path, monkeypatch):
    with pytest.raises(Exception, match="audio folder not found"):
        main(["train", "--data_dir", str(tmp_path / "absent"), "--output_dir", str(tmp_path / "o"), "--debug"])
    monkeypatch.setenv("HFSPEECH_DEBUG", "1")
    with pytest.raises(Exception, match="model folder not found"):
        main(["evaluate", "--model", str(tmp_path / "absent"), "--data_dir", str(tmp_path)])
    monkeypatch.delenv("HFSPEECH_DEBUG")
    result = subprocess.run([sys.executable, "-m", "hfspeech.cli", "evaluate", "--model", str(tmp_path / "absent"),
                             "--data_dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'absent'}: model folder not found"
