"""Many classes, few clips each (scale audit, session 36): carved splits keep a clip of every class to train on.

A speaker-ID manifest of 1,000 speakers with 1-4 clips each pooled its rare classes into one stratum to split at
all; within it the draw was random, so 8 speakers with 3 clips each had every clip held out: the run warned that
the train split had no clip of them, and the model could never answer them.
"""

from __future__ import annotations

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict

from hfspeech.data.splits import make_splits
from tests.conftest import write_tone_folder


def speakers_with_few_clips(num_classes: int = 300) -> Dataset:
    """`num_classes` classes of 1 to 4 clips each, and one class of 200 (a frequent speaker)."""
    labels = [label for label in range(num_classes) for _ in range(1 + label % 4)] + [0] * 200
    return Dataset.from_dict({"label": labels, "row": list(range(len(labels)))}).cast_column(
        "label", ClassLabel(names=[f"spk{label:04d}" for label in range(num_classes)]))


def test_a_rare_class_is_never_held_out_whole():
    data = speakers_with_few_clips()
    said: list[str] = []
    splits = make_splits(DatasetDict(train=data), 0.1, 0.1, seed=0, said=said)
    trained = set(splits["train"]["label"])
    held_out = set(splits["validation"]["label"]) | set(splits["test"]["label"])
    assert held_out <= trained, sorted(held_out - trained)
    assert sorted(row for split in splits.values() for row in split["row"]) == list(range(len(data)))
    assert min(len(splits["validation"]), len(splits["test"])) >= 0.08 * len(data)  # near their 10% still
    assert any("one clip of each is kept for training" in line for line in said), said


@pytest.mark.parametrize("single_clip_classes", [0, 5])
def test_bad_files_of_an_audio_folder_are_counted_and_named_not_met_one_run_at_a_time(tmp_path, single_clip_classes):
    """Every file was decoded, yet the error named one bad file: 500 bad files took 500 runs to find. With classes of
    one clip (speaker ID), the clip kept for training must leave the splits rows of one table, decoded once."""
    import soundfile as sf

    from hfspeech.data.audio import AudioFileError
    from hfspeech.data.loading import load_audio_dataset
    from hfspeech.data.prepare import prepare_dataset

    folder = write_tone_folder(tmp_path / "data", clips_per_class=6, rates=(8000,))
    for rare in range(single_clip_classes):
        (folder / f"rare{rare}").mkdir()
        sf.write(folder / f"rare{rare}" / "only.wav", np.full(4000, 0.1, np.float32), 8000)
    empty = sorted((folder / "low").glob("*.wav"))[:4]
    for path in empty:
        path.write_bytes(b"")
    splits = make_splits(load_audio_dataset(data_dir=str(folder)), 0.2, 0.2, seed=0)
    with pytest.raises(AudioFileError) as error:
        prepare_dataset(splits, 8000)
    message = str(error.value)
    assert "; and 3 more bad file(s) in this data: " in message, message
    assert [message.count(path.name) for path in empty] == [1, 1, 1, 1], message
    assert message.endswith("(--skip_bad_files skips such files and lists them in data_report.json)"), message


def test_data_report_names_every_class_a_split_lacks_not_the_first_three():
    """The warning names three ("and 672 more"): data_report.json named no more, so no file said which speakers
    the model never trained on or a test set could not score."""
    from hfspeech.data.prepare import DataReport
    from hfspeech.data.split_audit import audit_missing_classes

    names = [f"spk{label:04d}" for label in range(50)]
    scored = Dataset.from_dict({"label": [0, 1, 2]}).cast_column("label", ClassLabel(names=names))
    report = DataReport()
    audit_missing_classes(DatasetDict(test=scored), report)
    assert "and 44 more" in report.warnings[0]
    assert report.to_dict()["classes_missing"] == {"test": names[3:]}
    audit_missing_classes(DatasetDict(train=scored), report, called="clips of d1")  # evaluate's folder: not "train"
    assert report.classes_missing["clips of d1"] == names[3:] and "train" not in report.classes_missing
