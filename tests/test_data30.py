"""Data-layer findings of two audits (session 30): folders listed as training lists them, one-line names in
audio errors, symbolic link loops, the empty file's digest, and training clips longer than the crop."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset, DatasetDict

from tests.conftest import run_cli_output, save_random_baseline, synth_clip

RATE = 16000


def write_clip(path, seconds: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synth_clip("low", np.random.default_rng(0), RATE, seconds), RATE)


def test_find_audio_files_lists_a_folder_as_training_does(tmp_path):
    """A macOS fork `._a.wav` (not audio) stopped the int8 gate when decoded, and a linked class folder was
    skipped without a word: 'tr2' gave 9 clips (8 and the fork) instead of 16."""
    from hfspeech.data.audio import find_audio_files
    from hfspeech.inference.agreement import labelled_clips

    write_clip(tmp_path / "held" / "yes" / "a.wav")
    (tmp_path / "held" / "yes" / "._a.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble fork")
    write_clip(tmp_path / "elsewhere" / "no" / "b.wav")
    os.symlink(tmp_path / "elsewhere" / "no", tmp_path / "held" / "no")
    os.symlink("..", tmp_path / "held" / "yes" / "up")  # a loop: walked once, not round
    paths, labels = labelled_clips(tmp_path / "held", {"yes", "no"})
    assert (paths, labels) == ([str(tmp_path / "held" / "no" / "b.wav"), str(tmp_path / "held" / "yes" / "a.wav")],
                               ["no", "yes"])
    assert find_audio_files(tmp_path / "held" / "absent") == []  # as rglob: the callers name a missing folder


def test_an_audio_error_shows_a_name_with_a_line_break_on_one_line(tmp_path, capsys):
    """`predict $'no\\nexist.wav'` printed `error: no exist.wav: file not found`, a name that may be another file."""
    from hfspeech.data.audio import AudioFileError, decode_audio

    missing = str(tmp_path / "no\nexist.wav")
    with pytest.raises(AudioFileError) as caught:
        decode_audio(missing, RATE)
    assert caught.value.path == missing  # kept as given: code that opens or matches the file reads it
    assert "\n" not in str(caught.value) and "no\\nexist.wav" in str(caught.value)
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["low", "high"], 0.5)
    code, _, err = run_cli_output(["predict", str(model), missing], capsys)
    assert code != 0 and "no\\nexist.wav': file not found" in err and "no exist.wav" not in err, err


def test_a_symbolic_link_loop_is_named_a_loop(tmp_path):
    """`loop1.wav -> loop2.wav -> loop1.wav` was a 'broken symbolic link (to loop2.wav, which does not exist)'."""
    from hfspeech.data.audio import AudioFileError, decode_audio, iter_audio_chunks

    os.symlink("loop2.wav", tmp_path / "loop1.wav")
    os.symlink("loop1.wav", tmp_path / "loop2.wav")
    with pytest.raises(AudioFileError, match=r"loop1\.wav: symbolic link loop \(to loop2\.wav"):
        decode_audio(str(tmp_path / "loop1.wav"), RATE)
    with pytest.raises(AudioFileError, match="symbolic link loop"):
        next(iter_audio_chunks(tmp_path / "loop2.wav", RATE))
    os.symlink("gone.wav", tmp_path / "dangling.wav")
    with pytest.raises(AudioFileError, match=r"broken symbolic link \(to gone\.wav, which does not exist\)"):
        decode_audio(str(tmp_path / "dangling.wav"), RATE)


def empty_and_real_clips(tmp_path) -> tuple[str, str]:
    empty, real = tmp_path / "data" / "yes" / "empty.wav", tmp_path / "data" / "yes" / "real.wav"
    write_clip(real)
    empty.write_bytes(b"")
    return str(empty), str(real)


def test_an_old_record_holding_the_empty_digest_matches_no_empty_file(tmp_path):
    """Records written before `prepare.kept_rows` hold a skipped 0-byte file's digest: every 0-byte file evaluated
    (distill's test clips, `export --eval_dir`, which digest without skipping bad files) counted as trained on."""
    from hfspeech.data.clip_digests import TRAINING_CLIPS_FILE, heard_clips, read_training_clips

    empty, real = empty_and_real_clips(tmp_path)
    digest = {path: hashlib.sha1(open(path, "rb").read()).hexdigest()[:16] for path in (empty, real)}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / TRAINING_CLIPS_FILE).write_text(json.dumps({"train": [digest[empty], digest[real]]}))
    record = read_training_clips(str(tmp_path / "run"))
    assert record["train"] == {digest[real]}
    matched = heard_clips({"train": {digest[empty], digest[real]}, "validation": set()},
                          Dataset.from_dict({"audio": [empty, real]}))
    assert matched == (1, "1 in its train split; yes/real.wav")


def test_a_record_never_holds_the_empty_digest(tmp_path):
    from hfspeech.data.clip_digests import record_training_clips

    empty, real = empty_and_real_clips(tmp_path)
    record = record_training_clips(DatasetDict({"train": Dataset.from_dict({"audio": [empty, real]})}))
    assert record == {"train": [hashlib.sha1(open(real, "rb").read()).hexdigest()[:16]]}


def prepared_lengths(tmp_path, seconds: list[float]) -> DatasetDict:
    """A train split decoded by `prepare_dataset` (its `length` column) from clips of `seconds`."""
    from hfspeech.data.prepare import prepare_dataset

    paths = []
    for i, length in enumerate(seconds):
        write_clip(tmp_path / "clips" / f"{i}.wav", length)
        paths.append(str(tmp_path / "clips" / f"{i}.wav"))
    raw = Dataset.from_dict({"audio": paths, "label": [0] * len(paths)}).cast_column("audio", Audio(decode=False))
    return prepare_dataset(DatasetDict({"train": raw}), RATE)[0]


def test_many_training_clips_longer_than_the_crop_are_noted_once(tmp_path, caplog):
    """27 of 61 clips were longer than the 2-s crop (the centre crop silent for 14) and `data_report.json` said
    nothing."""
    from hfspeech.data.long_clips import note_long_clips
    from hfspeech.data.prepare import DataReport

    dataset, report = prepared_lengths(tmp_path, [1.0, 1.0, 0.8, 0.5]), DataReport()
    with caplog.at_level(logging.WARNING, logger="hfspeech.data"):
        for _ in range(2):
            note = note_long_clips(dataset, report, 0.6, RATE)
    expected = ("3 of 4 training clips are longer than the 0.6-s crop, the longest 1 s: training crops a random 0.6 s "
                "of each; consider --max_length_seconds 1 or --trim_silence")
    assert note == expected and report.notes == [expected]
    assert [r.getMessage() for r in caplog.records] == [f"data: {expected}"]
    assert "or --trim_silence" not in note_long_clips(dataset, DataReport(), 0.6, RATE, trimmed=True)


def test_few_or_no_clips_longer_than_the_crop_are_not_noted(tmp_path):
    from hfspeech.data.long_clips import long_clips_note, note_long_clips
    from hfspeech.data.prepare import DataReport

    one_in_ten = [2 * RATE] + [RATE // 2] * 9  # 10%: not more than the share
    assert long_clips_note(one_in_ten, 1.0, RATE) is None
    assert long_clips_note([2 * RATE] * 4, 0, RATE) is None and long_clips_note([2 * RATE] * 4, None, RATE) is None
    assert long_clips_note([RATE] * 4, 1.0, RATE) is None  # as long as the crop: nothing cut
    report = DataReport()
    assert note_long_clips(DatasetDict({"test": Dataset.from_dict({"length": [9 * RATE]})}), report, 1.0, RATE) is None
    assert report.notes == []  # a streamed run: no prepared train split


def test_two_empty_files_in_two_splits_are_not_a_copy(tmp_path):
    """With --skip_bad_files a 0-byte file in train and one in test were warned of as a leak (same contents)."""
    from hfspeech.data.split_audit import audit_splits

    empty, real = empty_and_real_clips(tmp_path)
    other_empty = tmp_path / "data" / "no" / "empty.wav"
    other_empty.parent.mkdir()
    other_empty.write_bytes(b"")
    (tmp_path / "copy.wav").write_bytes(open(real, "rb").read())
    dataset = DatasetDict({"train": Dataset.from_dict({"audio": [empty, real], "label": [0, 0]}),
                           "test": Dataset.from_dict({"audio": [str(other_empty), str(tmp_path / "copy.wav")],
                                                      "label": [0, 0]})})
    warnings = audit_splits(dataset)
    assert len(warnings) == 1 and "1 file(s) of the test split have the same contents" in warnings[0], warnings
    assert "copy.wav = yes/real.wav" in warnings[0] and "empty.wav" not in warnings[0]
