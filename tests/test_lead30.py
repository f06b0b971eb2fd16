"""Session 30's own mends of the helpers' findings: a training manifest written relative to the current folder
says relative to what (as `predict --manifest` does), and a `/stream?windows=` that is neither true nor false is a
400 naming it (tests/test_stream_inputs.py)."""

from __future__ import annotations

import io
import logging
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.data.loading import load_audio_dataset
from hfspeech.data.manifests import ManifestError
from tests.conftest import synth_clip


def test_a_training_manifest_written_from_the_current_folder_says_relative_to_what(tmp_path: Path, monkeypatch):
    clip = tmp_path / "data" / "yes" / "a.wav"
    clip.parent.mkdir(parents=True)
    sf.write(clip, synth_clip("low", np.random.default_rng(0), 16000, 0.6), 16000)
    (tmp_path / "data" / "test.jsonl").write_text(json.dumps({"path": "data/yes/a.wav", "label": "yes"}) + "\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError, match="is not in the manifest's folder .* but is in the current folder"):
        load_audio_dataset(test_file="data/test.jsonl")  # was "1 audio file(s) ... do not exist: [...]" alone


def test_a_bad_streamed_training_clip_says_how_to_go_on(tmp_path: Path):
    from hfspeech.data.streaming import StreamedClipError, StreamingCollator

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    collator = StreamingCollator(lambda batch: batch, lambda example: example, 16000)
    with pytest.raises(StreamedClipError, match=r"empty.wav: .*\(--skip_bad_files skips such files"):
        collator.decode({"audio": {"path": str(empty), "bytes": None}})  # the map-style runs' words (data.prepare)


def test_thresholds_are_not_tuned_on_scores_that_overflowed():
    """One NaN validation score made its class's cut NaN, silently reset to 0.5 (sklearn's loop refused NaN)."""
    from hfspeech.errors import HfspeechError
    from hfspeech.evaluation.thresholds import tune_thresholds

    assert tune_thresholds(np.array([[0.9], [0.8], [0.1]]), np.array([[1], [1], [0]])).tolist() == [0.45]
    with pytest.raises(HfspeechError, match="1 validation clip"):
        tune_thresholds(np.array([[0.9], [0.8], [np.nan]]), np.array([[1], [1], [0]]))
    assert tune_thresholds(np.zeros((5, 0)), np.zeros((5, 0))).shape == (0,)


def test_a_run_whose_clips_are_longer_than_its_crop_notes_it_in_its_data_report(tone_folder, tmp_path: Path):
    """The 0.5-s tone clips under a 0.3-s crop: a new user's 4-s takes under the 2-s default said nothing."""
    from hfspeech.training.run import main
    from tests.conftest import TINY_CNN

    main(["--data_dir", str(tone_folder), "--output_dir", str(tmp_path / "run"), "--model_type", "cnn",
          "--config_overrides", TINY_CNN, "--num_train_epochs", "1", "--max_length_seconds", "0.3",
          "--save_strategy", "no", "--eval_strategy", "no"])
    notes = json.loads((tmp_path / "run" / "data_report.json").read_text())["notes"]
    assert [note for note in notes if "training clips are longer than the 0.3-s crop" in note], notes


def test_serve_trims_an_upload_for_a_model_trained_trimmed(tmp_path: Path):
    """`hfspeech serve` answered a clip with 1 s of quiet lead-in untrimmed while predict trimmed it."""
    from starlette.testclient import TestClient

    from hfspeech.serve.app import ServeSettings, create_app
    from tests.conftest import TINY_CNN, save_random_baseline

    model = save_random_baseline(tmp_path / "m", "cnn", ["low", "high", "noise"], 0.5, max_length_seconds=0.5,
                                 trim_silence_top_db=40.0, **json.loads(TINY_CNN))
    tone = synth_clip("low", np.random.default_rng(0), 16000, 0.4)
    quiet = 1e-4 * np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    answers = []
    with TestClient(create_app(ServeSettings(model=str(model), request_timeout=5.0, allowed_hosts=[])),
                    base_url="http://127.0.0.1:8000") as client:
        for clip in (tone, np.concatenate([quiet, tone])):
            buffer = io.BytesIO()
            sf.write(buffer, clip, 16000, format="WAV", subtype="FLOAT")
            answer = client.post("/", content=buffer.getvalue())
            assert answer.status_code == 200, answer.text
            answers.append({row["label"]: row["score"] for row in answer.json()})
    assert answers[0] == pytest.approx(answers[1], abs=0.02)  # untrimmed: 0.40 apart (tests/test_trim30.py)


def test_a_checkpoint_from_before_the_trim_was_recorded_still_resumes_a_trimmed_run():
    """A run with --trim_silence writes `trim_silence_top_db` now; its older checkpoints lack it: resuming one was
    refused as "this run's model differs from the checkpoint's (trim_silence_top_db None -> 40.0)"."""
    from hfspeech.training.resume_inputs import config_differences

    assert config_differences({"model_type": "cnn"}, {"model_type": "cnn", "trim_silence_top_db": 40.0}) == []
    assert config_differences({"model_type": "cnn", "trim_silence_top_db": 30.0},
                              {"model_type": "cnn", "trim_silence_top_db": 40.0}) != []


def test_a_class_folder_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path, monkeypatch):
    """It was a PermissionError traceback in training (and skipped without a word by the held-out listing's rglob).
    The test runs as any user, root too: the refusal of the folder is the operating system's, simulated."""
    import os

    from hfspeech.data.folders import FolderLayoutError, walk_audio_files

    for label in ("yes", "no"):
        (tmp_path / label).mkdir()
        sf.write(tmp_path / label / "a.wav", np.zeros(1600, np.float32), 16000)
    real_scandir = os.scandir

    def refusing(path):
        if str(path).endswith("no"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(FolderLayoutError, match=r"no: cannot be read \(Permission denied\)"):
        walk_audio_files(tmp_path)


def test_an_untrimmed_run_is_not_resumed_trimmed(tmp_path: Path):
    """An untrimmed checkpoint's config has no trim attribute, as one from before it was recorded: its run_inputs.json
    tells them apart (R4: a resume with --trim_silence trained half untrimmed, then told inference to trim)."""
    from types import SimpleNamespace

    from hfspeech.training.arguments import DataArguments
    from hfspeech.training.checkpoints import CheckpointError
    from hfspeech.training.resume_inputs import check_same_data, data_record
    from hfspeech.training.run_inputs_file import write_record

    (tmp_path / "run" / "checkpoint-1").mkdir(parents=True)
    model_args = SimpleNamespace(model_name_or_path=None)
    training = SimpleNamespace(seed=0, resume_from_checkpoint=None)
    write_record(str(tmp_path / "run"), data_record(None, DataArguments(data_dir=str(tmp_path)), 0))
    check = str(tmp_path / "run" / "checkpoint-1")
    check_same_data(check, model_args, DataArguments(data_dir=str(tmp_path)), training)  # same: resumes
    with pytest.raises(CheckpointError, match="trim_top_db not given -> 40.0"):
        check_same_data(check, model_args, DataArguments(data_dir=str(tmp_path), trim_silence=True), training)
    old = json.loads((tmp_path / "run" / "run_inputs.json").read_text())
    del old["trim_top_db"]  # a record from before: not checked on it
    (tmp_path / "run" / "run_inputs.json").write_text(json.dumps(old))
    check_same_data(check, model_args, DataArguments(data_dir=str(tmp_path), trim_silence=True), training)


def test_calibration_keeps_only_each_clips_window(tmp_path: Path):
    """It kept up to 64 whole decoded files for the second graph's calibration (2.4 GB of 10-minute takes)."""
    from hfspeech.export.quantization import calibration_clips

    sf.write(tmp_path / "long.wav", np.zeros(16000 * 5, np.float32), 16000)
    clips = calibration_clips((str(tmp_path / "long.wav"),), 16000, 8000, False)
    assert [len(clip) for clip in clips] == [8000] and clips[0].base is None  # a copy: the whole clip let go


def test_a_multi_label_models_held_out_folder_refuses_a_label_depth_it_would_ignore(tmp_path: Path):
    from hfspeech.inference.agreement import HeldOutError, labelled_clips

    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "x.wav", synth_clip("low", np.random.default_rng(0), 16000), 16000)
    assert labelled_clips(tmp_path, None)[0] == [str(tmp_path / "a" / "x.wav")]
    with pytest.raises(HeldOutError, match="--label_depth"):
        labelled_clips(tmp_path, None, label_depth=2)


def test_a_kept_failed_int8_check_with_a_number_missing_is_still_said(tmp_path: Path):
    """A hand-edited int8_check.json with a null drop was a TypeError traceback in stage."""
    from hfspeech.hub.card_training import variant_warnings

    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "int8_check.json").write_text(json.dumps({"passed": False, "accuracy_drop_points": None}))
    [warning] = variant_warnings(tmp_path, [], True)
    assert "loses n/a accuracy points" in warning


def test_predict_on_a_folder_of_hidden_files_says_it_has_no_audio(tmp_path: Path, capsys):
    """A folder of `.DS_Store` and `._x.wav` forks was reported as "is a folder, not an audio file" (N's report)."""
    from tests.conftest import TINY_CNN, run_cli_output, save_random_baseline

    model = save_random_baseline(tmp_path / "m", "cnn", ["a", "b"], 0.5, **json.loads(TINY_CNN))
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "clips" / "._x.wav").write_bytes(b"\0" * 10)
    code, _, err = run_cli_output(["predict", str(model), str(tmp_path / "clips")], capsys)
    assert code == 1 and "is a folder without audio files" in err, err


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def transformers_warnings(build) -> list[str]:
    """What transformers' loader logs while `build` runs (its logger does not propagate to caplog's)."""
    records, logger = Records(), logging.getLogger("transformers.modeling_utils")
    logger.addHandler(records)
    try:
        build()
    finally:
        logger.removeHandler(records)
    return records.messages


def test_building_a_head_to_train_hides_only_the_note_that_the_head_is_new(tmp_path: Path):
    """transformers' "newly initialized: [projector, classifier] You should probably TRAIN this model" at the start
    of every fine-tune, which trains them; a note listing an encoder weight (a checkpoint that did not load) stays."""
    from transformers import AutoModel

    from hfspeech.models.loading import _not_a_new_head_note
    from hfspeech.synthetic.tiny import save_tiny_ssl_model, tiny_ssl_config
    from hfspeech.training.arguments import ModelArguments
    from hfspeech.training.model_setup import build_model

    encoder = tmp_path / "encoder"  # a checkpoint without a classification head, as Whisper's on the Hub
    save_tiny_ssl_model(encoder, "wav2vec2", labels=["a", "b"])
    AutoModel.from_config(tiny_ssl_config("wav2vec2", ["a", "b"])).save_pretrained(encoder)
    messages = transformers_warnings(lambda: build_model(ModelArguments(model_name_or_path=str(encoder)), ["a", "b"]))
    assert not [m for m in messages if "TRAIN this model" in m], messages
    note = "Some weights of X were not initialized from the model checkpoint at Y and are newly initialized: [{}]"
    record = logging.LogRecord("transformers.modeling_utils", logging.WARNING, "", 0, note, None, None)
    record.msg = note.format("'classifier.bias', 'projector.weight'")
    assert not _not_a_new_head_note(record)
    record.msg = note.format("'classifier.bias', 'wav2vec2.encoder.layers.0.attention.k_proj.weight'")
    assert _not_a_new_head_note(record)


def test_a_file_rewritten_shorter_between_the_trims_two_reads_is_an_error_not_zero_scores(tmp_path: Path):
    """A trimmed model reads a file twice (measure, then keep); one rewritten in between scored [0, 0, 0] (R5)."""
    from hfspeech.data.audio import AudioFileError
    from hfspeech.inference import batch

    clip = tmp_path / "take.wav"
    quiet = 1e-4 * np.random.default_rng(1).standard_normal(16000 * 3).astype(np.float32)
    sf.write(clip, np.concatenate([quiet, synth_clip("low", np.random.default_rng(0), 16000, 1.0)]), 16000)
    reads = []
    real_chunks = batch.iter_audio_chunks

    def rewritten_after_the_first_read(path, rate, seconds):
        if reads:
            sf.write(clip, quiet[:16000], 16000)
        reads.append(path)
        return real_chunks(path, rate, seconds)
    config = type("Config", (), {"trim_silence_top_db": 40.0})()
    batch.iter_audio_chunks = rewritten_after_the_first_read
    try:
        with pytest.raises(AudioFileError, match="changed while it was read"):
            list(batch.file_chunks(str(clip), 16000, 1, config))
    finally:
        batch.iter_audio_chunks = real_chunks


def test_the_trimmed_pipeline_refuses_a_dict_without_its_rate():
    from hfspeech.inference.pipeline import clip_at_model_rate

    with pytest.raises(ValueError, match="sampling_rate"):
        clip_at_model_rate({"raw": np.zeros(100, np.float32)}, 16000)  # was taken as the model's rate


@pytest.mark.parametrize("length", [1, 127, 128, 129, 511, 512, 513, 4000])
@pytest.mark.parametrize("chunk", [1, 3, 128, 7919])
def test_the_chunked_trim_is_librosas_trim(length, chunk):
    """`TrimMeter` (long files, chunk by chunk) and `trim_span` (whole clips, through it) give librosa's span on edge
    lengths and chunks: librosa is the reference the trims of every model trained so far were cut with."""
    import librosa

    from hfspeech.data.samples import TRIM_FRAME, TRIM_HOP, TrimMeter, trim_span

    rng = np.random.default_rng(length + chunk)
    clip = np.concatenate([1e-4 * rng.standard_normal(length), rng.standard_normal(length)]).astype(np.float32)
    for top_db in (0, 40, 80):
        meter = TrimMeter()
        for start in range(0, len(clip), chunk):
            meter.push(clip[start:start + chunk])
        _, (start, end) = librosa.effects.trim(clip, top_db=top_db, frame_length=TRIM_FRAME, hop_length=TRIM_HOP)
        librosas = (int(start), int(end)) if end > start else (0, len(clip))  # nothing kept: the clip whole
        assert meter.span(top_db) == trim_span(clip, top_db) == librosas, (length, chunk, top_db)


def test_the_lowest_scored_classes_of_a_folded_table_leave_out_those_without_a_score():
    """A label with no positive in the split has AP NaN: sorted among numbers, it put unordered rows on top."""
    from hfspeech.hub.card_classes import weakest

    rows = [(f"c{i}",) for i in range(40)]
    scores = [float("nan") if i % 3 == 0 else (40 - i) / 40 for i in range(40)]
    shown = weakest(("label",), rows, scores, "labels")
    assert [line for line in shown.splitlines() if line.startswith("| c")][:3] == ["| c38 |", "| c37 |", "| c35 |"]


def test_distilling_from_a_trimmed_teacher_without_trimming_says_so(tmp_path: Path, caplog):
    """The teacher's targets are computed on the student's clips: untrimmed, a trimmed teacher never heard them so."""
    from hfspeech.training.arguments import DataArguments
    from hfspeech.training.distill import warn_if_trimmed_otherwise
    from tests.conftest import TINY_CNN, save_random_baseline

    teacher = save_random_baseline(tmp_path / "t", "cnn", ["a", "b"], 0.5, trim_silence_top_db=40.0,
                                   **json.loads(TINY_CNN))
    with caplog.at_level(logging.WARNING, logger="hfspeech.distill"):
        warn_if_trimmed_otherwise(str(teacher), DataArguments(data_dir=str(tmp_path)))
        warn_if_trimmed_otherwise(str(teacher), DataArguments(data_dir=str(tmp_path), trim_silence=True))
    said = [record.getMessage() for record in caplog.records if "trimmed of silence" in record.getMessage()]
    assert len(said) == 1 and "decodes them untrimmed" in said[0] and "--trim_top_db 40" in said[0], said


def test_a_runs_export_folder_not_written_yet_says_how_to_write_it(tmp_path: Path):
    from hfspeech.models.folder_checks import check_model_folder
    from hfspeech.models.loading import NotAModelError
    from tests.conftest import TINY_CNN, save_random_baseline

    run = save_random_baseline(tmp_path / "run", "cnn", ["a", "b"], 0.5, **json.loads(TINY_CNN))
    with pytest.raises(NotAModelError, match=rf"onnx: model folder not found; the run has no onnx export yet: "
                                             rf"`hfspeech export {run} --format onnx` writes it"):
        check_model_folder(str(run / "onnx"))
    with pytest.raises(NotAModelError, match=r"elsewhere/onnx: model folder not found$"):
        check_model_folder(str(tmp_path / "elsewhere" / "onnx"))
