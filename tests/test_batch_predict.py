"""Many files at once: `predict_files` batches windows across files and decodes ahead in a thread, and gives
exactly what classifying each file alone gives; `hfspeech predict --output` writes as it goes and resumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.cli import main as cli
from hfspeech.data.audio import AudioFileError, decode_audio
from hfspeech.inference.batch import predict_files, prefetched
from hfspeech.inference.classifier import AudioClassifier
from tests.conftest import save_random_baseline, synth_clip

LENGTHS = [0.3, 2.2, 0.5, 7.9, 0.45, 1.0]  # seconds; the model's window is 0.5 s


@pytest.fixture(scope="module")
def random_cnn(tmp_path_factory) -> Path:
    return save_random_baseline(tmp_path_factory.mktemp("batch") / "cnn", "cnn", ["low", "high", "noise"], 0.5,
                                n_mels=16, conv_channels=[4, 8], max_length_seconds=0.5)


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(3)
    for i, seconds in enumerate(LENGTHS):
        rate = (16000, 8000, 44100)[i % 3]
        sf.write(folder / f"clip{i}.wav", synth_clip(["low", "high", "noise"][i % 3], rng, rate, seconds), rate)
    return folder


class CountingBackend:
    """The real backend, with its calls and batch sizes recorded."""

    def __init__(self, backend):
        self.backend, self.config, self.batches = backend, backend.config, []

    def logits(self, inputs):
        self.batches.append(len(next(iter(inputs.values()))))
        return self.backend.logits(inputs)


def test_files_batched_together_give_what_each_file_alone_gives(random_cnn, audio_folder, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio" * 30)
    paths = sorted(str(p) for p in audio_folder.glob("*.wav"))
    paths.insert(3, str(broken))
    classifier = AudioClassifier.from_pretrained(str(random_cnn), batch_size=8)
    counting = CountingBackend(classifier.backend)
    classifier.backend = counting
    results = list(predict_files(classifier, paths, top_k=3, hop_seconds=0.2))
    batches = list(counting.batches)
    assert [path for path, _ in results] == paths
    assert isinstance(results[3][1], AudioFileError) and "broken.wav: cannot be decoded" in str(results[3][1])
    windows = 0
    for path, prediction in results[:3] + results[4:]:
        alone = classifier.classify_waveform(decode_audio(path, 16000), top_k=3, hop_seconds=0.2)
        assert prediction.labels == alone.labels and prediction.num_windows == alone.num_windows
        np.testing.assert_allclose(prediction.scores, alone.scores, atol=1e-5)
        assert [w.index for w in prediction.windows] == list(range(alone.num_windows))
        assert [w.start for w in prediction.windows] == [w.start for w in alone.windows]
        windows += prediction.num_windows
    # Every batch full but the last: windows of consecutive files shared batches.
    assert sum(batches) == windows > 40 and all(size == 8 for size in batches[:-1])


def test_prefetched_keeps_order_and_raises_the_producers_error():
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise RuntimeError("decoder broke")

    got = []
    with pytest.raises(RuntimeError, match="decoder broke"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_predict_writes_a_folder_to_a_file_and_resumes_where_it_stopped(random_cnn, audio_folder, tmp_path, suffix,
                                                                          capsys):
    complete = tmp_path / f"complete{suffix}"
    assert cli(["predict", str(random_cnn), str(audio_folder), "--output", str(complete), "--no-progress"]) == 0
    rows = read_rows(complete)
    assert [row["path"] for row in rows] == sorted(str(p) for p in audio_folder.glob("*.wav"))
    assert capsys.readouterr().out == ""  # rows go to the file, not to stdout
    # A run cut off after two files, in the middle of writing the third.
    partial = tmp_path / f"partial{suffix}"
    text = complete.read_text()
    lines = text.splitlines(keepends=True)
    kept = 3 if suffix == ".csv" else 2  # the CSV header counts as a line
    partial.write_text("".join(lines[:kept]) + lines[kept][:10])
    assert cli(["predict", str(random_cnn), str(audio_folder), "--output", str(partial), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "4 files written" in err and "2 already there" in err
    assert_same_rows(read_rows(partial), rows)  # batched with other files, so equal within float rounding
    resumed = partial.read_text()
    assert cli(["predict", str(random_cnn), str(audio_folder), "--output", str(partial), "--no-progress"]) == 0
    assert partial.read_text() == resumed  # nothing left to do


FOREIGN_OUTPUTS = {  # a file of the user's at the --output path: refused, left byte for byte as it was
    "results.json": ('{\n  "accuracy": 0.9\n}', "line 1 is not a prediction row"),
    "notes.jsonl": ('{"a": 1}\n', "line 1 is not a prediction row"),
    "scores.csv": ("id,score\n1,0.5\n2,0.7", "its header is not path,label"),
    "one-line.csv": ("id,score", "no complete line"),
}


@pytest.mark.parametrize("name", list(FOREIGN_OUTPUTS))
def test_predict_refuses_an_output_file_it_did_not_write_and_leaves_it_alone(random_cnn, audio_folder, tmp_path,
                                                                               name, capsys):
    text, problem = FOREIGN_OUTPUTS[name]
    output = tmp_path / name
    output.write_text(text)
    assert cli(["predict", str(random_cnn), str(audio_folder / "clip0.wav"), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {output}: not the output of an earlier") and problem in err, err
    assert len(err.strip().splitlines()) == 1 and output.read_text() == text


@pytest.mark.parametrize("output, problem", [("out.xyz", "must end in .jsonl or .csv"),
                                             ("folder.csv", "--output is a folder")])
def test_predict_names_a_bad_output_path_in_one_line(random_cnn, audio_folder, tmp_path, output, problem, capsys):
    (tmp_path / "folder.csv").mkdir()
    assert cli(["predict", str(random_cnn), str(audio_folder / "clip0.wav"), "--output", str(tmp_path / output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / output}: ") and problem in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags", [["--top_k", "0"], ["--window_seconds", "-1"], ["--hop_seconds", "0"],
                                   ["--batch_size", "0"], ["--timeline", "a_file.txt"]])
def test_predict_refuses_flags_it_cannot_use(random_cnn, audio_folder, tmp_path, monkeypatch, flags, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_:
        cli(["predict", str(random_cnn), str(audio_folder / "clip0.wav"), *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "error: " in err and flags[0] in err and "Traceback" not in err, err
    assert (tmp_path / "a_file.txt").read_text() == "mine"


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    assert [row["path"] for row in got] == [row["path"] for row in expected]
    for a, b in zip(got, expected):
        if "predictions" in a:  # JSONL
            assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]
            np.testing.assert_allclose([p["score"] for p in a["predictions"]],
                                       [p["score"] for p in b["predictions"]], atol=1e-5)
        else:
            assert a["labels"] == b["labels"] and a["num_windows"] == b["num_windows"]
            np.testing.assert_allclose(np.array(a["scores"].split("|"), float),
                                       np.array(b["scores"].split("|"), float), atol=1e-5)


def test_predict_reads_a_manifest_and_shows_progress_with_the_real_time_factor(random_cnn, audio_folder, tmp_path,
                                                                                capsys):
    manifest = tmp_path / "files.csv"
    manifest.write_text("path,label\n" + "".join(f"{audio_folder.name}/clip{i}.wav,x\n" for i in (1, 3)))
    for clip in (1, 3):
        (tmp_path / audio_folder.name).mkdir(exist_ok=True)
        (tmp_path / audio_folder.name / f"clip{clip}.wav").write_bytes((audio_folder / f"clip{clip}.wav").read_bytes())
    assert cli(["predict", str(random_cnn), "--manifest", str(manifest), "--json", "--progress"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["path"] for line in captured.out.splitlines()] == [
        str(tmp_path / audio_folder.name / f"clip{i}.wav") for i in (1, 3)]
    assert "x real time" in captured.err
    assert cli(["predict", str(random_cnn), "--manifest", str(tmp_path / "files.txt")]) == 2
    assert "a manifest is .csv, .tsv or .jsonl" in capsys.readouterr().err
