"""A datasets-layout folder whose `metadata.csv` Excel saved in a form datasets' audiofolder builder cannot read:
Windows-1252 ("CSV"), UTF-16 ("Unicode Text"), `;` (European Excel) or tab-separated. Each ended in the builder's
traceback (exit 1); now one line naming the file and what to do (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfspeech.cli import main as cli
from tests.test_label_text_audit import write_metadata_folder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

SAVED_AS = {  # how Excel writes the same sheet
    "cp1252": (lambda text: text.encode("cp1252"), "not UTF-8"),
    "utf16": (lambda text: text.replace(",", "\t").encode("utf-16"), "not UTF-8"),
    "semicolons": (lambda text: text.replace(",", ";").encode("utf-8"), "separated by semicolons"),
    "tabs": (lambda text: text.replace(",", "\t").encode("utf-8"), "separated by tabs"),
}


@pytest.mark.parametrize("kind", SAVED_AS)
def test_a_metadata_csv_excel_saved_another_way_is_one_line_naming_it(tmp_path, capsys, kind):
    root = write_metadata_folder(tmp_path / "data", {"train": ["café", "naïve", "café", "naïve"]})
    metadata = root / "train" / "metadata.csv"
    encode, words = SAVED_AS[kind]
    metadata.write_bytes(encode(metadata.read_text(encoding="utf-8")))
    code = cli(["train", "--data_dir", str(root), "--output_dir", str(tmp_path / "run"), "--num_train_epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{metadata}: " in err and words in err


def test_a_comma_separated_utf8_metadata_csv_is_still_read(tmp_path):
    from hfspeech.data.loading import load_audio_dataset

    root = write_metadata_folder(tmp_path / "data", {"train": ["café", "naïve"]})
    assert sorted(set(load_audio_dataset(data_dir=str(root))["train"]["label"])) == ["café", "naïve"]
