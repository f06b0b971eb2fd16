"""A file holding fewer samples than make one at the model's rate (5 samples at 384 kHz are 0.21 of one at 16 kHz;
soxr rounds under half a sample to none) resampled to nothing, and was then scored on nothing: `predict` printed
every label at 0.000 with exit 0, `evaluate` counted it as its first label, `classify_file` gave a `Prediction` of 0
windows. It is now a bad file, named with its numbers, on every path (predict, evaluate, training's decode, serve),
and `score_files` never gives scores of no window (the backstop).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli_output, save_random_baseline, write_csv_manifest

from hfspeech.data.audio import AudioFileError, decode_audio, iter_audio_chunks
from hfspeech.features.waveform import ZERO_LENGTH, no_samples_problem
from hfspeech.errors import UsageError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
TOO_SHORT = "5 samples at 384000 Hz, less than one sample at the model's 16000 Hz"


def write_samples(path, count: int, rate: int):
    sf.write(path, np.full(count, 0.1, np.float32), rate)
    return path


def tone(path, rate: int = 16000):
    sf.write(path, (0.3 * np.sin(np.arange(rate // 2) * 0.2)).astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return save_random_baseline(tmp_path_factory.mktemp("model"), "cnn", ["a", "b"], 0.5, n_mels=16,
                                conv_channels=[4, 8])


@pytest.fixture
def short_wav(tmp_path):
    return write_samples(tmp_path / "hr384000_5.wav", 5, 384000)


@pytest.mark.parametrize("count, rate", [(5, 384000), (11, 384000), (2, 96000), (1, 44100)])
def test_chunks_of_a_file_too_short_for_one_sample_are_an_error_with_its_numbers(tmp_path, count, rate):
    path = write_samples(tmp_path / "short.wav", count, rate)
    with pytest.raises(AudioFileError) as error:
        list(iter_audio_chunks(path, 16000))
    assert error.value.problem.startswith(f"{count} sample{'s' * (count > 1)} at {rate} Hz, less than one sample at "
                                          "the model's 16000 Hz"), error.value
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


@pytest.mark.parametrize("count, rate", [(12, 384000), (3, 96000), (2, 44100)])
def test_a_file_that_makes_one_sample_still_decodes(tmp_path, count, rate):
    """The line is where soxr makes a sample (half of one), not a guess: these give one sample, and are kept."""
    path = write_samples(tmp_path / "one.wav", count, rate)
    assert sum(chunk.size for chunk in iter_audio_chunks(path, 16000)) == 1
    assert decode_audio(str(path), 16000).size == 1


def test_a_file_with_no_samples_keeps_the_plain_wording(tmp_path):
    path = tmp_path / "header_only.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    for decode in (lambda: list(iter_audio_chunks(path, 16000)), lambda: decode_audio(str(path), 16000)):
        with pytest.raises(AudioFileError) as error:
            decode()
        assert error.value.problem == ZERO_LENGTH
    assert no_samples_problem(0, 384000, 16000) == ZERO_LENGTH


def test_the_whole_file_decode_of_training_and_serve_names_it_as_predict_does(short_wav):
    """Training and the server decode whole clips (`decode_audio`, `checked_waveform`): they said "no samples"."""
    for audio, name in ((str(short_wav), str(short_wav)), ({"path": None, "bytes": short_wav.read_bytes()}, "<audio")):
        with pytest.raises(AudioFileError) as error:
            decode_audio(audio, 16000)
        assert str(error.value).startswith(name) and TOO_SHORT in error.value.problem, error.value


def test_predict_names_it_as_a_bad_file(model_folder, short_wav, tmp_path, capsys):
    good, text = tone(tmp_path / "good.wav"), tmp_path / "text.wav"
    text.write_text("not audio at all")
    code, out, err = run_cli_output(["predict", str(model_folder), str(short_wav), str(good)], capsys)
    bad_code, _, _ = run_cli_output(["predict", str(model_folder), str(text), str(good)], capsys)
    assert code == bad_code != 0, (code, bad_code)
    assert "hr384000_5.wav" not in out and "good.wav" in out, out  # was "no (0.000), up (0.000) ..."
    named = [line for line in err.splitlines() if "hr384000_5.wav" in line]
    assert len(named) == 1 and TOO_SHORT in named[0], err


def test_classify_file_raises_rather_than_a_prediction_of_no_window(model_folder, short_wav):
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(str(model_folder))
    with pytest.raises(AudioFileError, match=TOO_SHORT):
        classifier.classify_file(str(short_wav))
    with pytest.raises(UsageError, match=f"^<waveform>: {TOO_SHORT}"):  # its numbers, as a file's
        classifier.classify_waveform(np.full(5, 0.1, np.float32), sampling_rate=384000)


def test_evaluate_refuses_it_and_skips_it_with_skip_bad_files(model_folder, short_wav, tmp_path, capsys):
    rows = [{"path": str(short_wav), "label": "a"}] + [
        {"path": str(tone(tmp_path / f"{label}.wav")), "label": label} for label in "ab"]
    manifest = write_csv_manifest(tmp_path / "test.csv", rows)
    command = ["evaluate", "--model", str(model_folder), "--test_file", manifest, "--output_dir"]
    code, _, err = run_cli_output([*command, str(tmp_path / "refused")], capsys)
    assert code != 0 and TOO_SHORT in err and "--skip_bad_files" in err, (code, err)
    assert not (tmp_path / "refused" / "test_metrics.json").exists()  # was scored, as label "a"
    code, _, err = run_cli_output([*command, str(tmp_path / "skipped"), "--skip_bad_files"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "skipped" / "test_metrics.json").read_text())
    assert (metrics["num_clips"], metrics["num_skipped_files"]) == (2, 1), metrics
    report = json.loads((tmp_path / "skipped" / "data_report.json").read_text())
    assert [entry["path"] for entry in report["skipped"]["test"]] == [str(short_wav)]


def test_serve_refuses_the_upload_as_empty_audio_with_its_numbers(model_folder, short_wav):
    from starlette.testclient import TestClient

    from hfspeech.serve.app import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(model=str(model_folder), request_timeout=5.0, allowed_hosts=[])),
                    base_url="http://127.0.0.1:8080") as client:
        assert client.get("/info").status_code == 200  # waits for the model
        answer = client.post("/", content=short_wav.read_bytes())
    assert answer.status_code == 400 and answer.json()["kind"] == "empty_audio", answer.text
    assert TOO_SHORT in answer.json()["error"], answer.text


def test_score_files_never_gives_scores_of_no_window(model_folder, tmp_path, monkeypatch):
    """The backstop: a decoder that yields nothing and raises nothing (as `iter_audio_chunks` did for the short file)
    makes the file an `AudioFileError`, not a `FileScores` of zeros; the files beside it are scored."""
    import hfspeech.inference.batch as batch
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(str(model_folder))
    silent, good = str(tmp_path / "silent.wav"), str(tone(tmp_path / "good.wav"))
    decoded = batch.iter_audio_chunks
    monkeypatch.setattr(batch, "iter_audio_chunks",
                        lambda path, *rest: iter(()) if path == silent else decoded(path, *rest))
    results = dict(batch.score_files(classifier, [silent, good]))
    assert isinstance(results[silent], AudioFileError) and results[silent].problem == ZERO_LENGTH, results[silent]
    assert len(results[good].windows) == 1


def test_numbers_are_given_only_where_they_are_true():
    """A header's count that would make a sample (a decoder found none in it anyway; a stream's undeclared length,
    2**63 - 1 frames) is not called "less than one sample": the plain wording."""
    assert no_samples_problem(5, 384000, 16000).startswith(TOO_SHORT)
    assert no_samples_problem(24, 384000, 16000) == ZERO_LENGTH  # one whole sample at 16 kHz
    assert no_samples_problem(2**63 - 1, 44100, 16000) == ZERO_LENGTH
