"""Manifests as spreadsheets and other locales write them (session 32): mangled labels, groups in two Unicode
forms, stdout that cannot encode a name, UTF-16, separators, Windows paths, Excel's error cells."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset, DatasetDict

from hfspeech.data.groups import read_groups
from hfspeech.data.labels import encode_labels
from hfspeech.data.manifests import ManifestError, manifest_files, read_manifest
from hfspeech.errors import DataError
from hfspeech.training.fold_manifests import check_fold_folder_names

HEADER_AND_ROWS = [["path", "label", "duration (s, approx)", "speaker"], ["a.wav", "café", "0,50", "spk0"],
                   ["b.wav", "up", "0,60", "spk1"]]
# Real words in many scripts: none is the Windows-1252 spelling of other UTF-8 text.
REAL_WORDS = ["café", "Zoë", "naïve", "Müller", "Straße", "São Paulo", "Ærøskøbing", "Łódź", "čeština", "ñandú",
              "œuvre", "€uro", "Ångström", "Ελληνικά", "русский", "日本語", "한국어", "العربية", "हिन्दी", "עברית",
              "ไทย", "Tiếng Việt", "½ price", "©2024", "±5 dB", "señor’s", "«quote»", "Â", "Ã", "ÃO", "ﬁsh", "🙂"]


def labels_of(*labels: str) -> DatasetDict:
    return DatasetDict({"train": Dataset.from_dict({"audio": [f"{i}.wav" for i in range(len(labels))],
                                                     "label": list(labels)})})


def written(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_mojibake_label_is_refused_naming_row_and_intended_text():
    with pytest.raises(DataError, match=r"m\.csv: row 2: the label 'naÃ¯ve' looks like 'naïve'.*write 'naïve'"):
        encode_labels(labels_of("up", "naÃ¯ve", "up"), source={"train_file": "m.csv"})


def test_mojibake_check_finds_mangled_text_and_leaves_real_words():
    from hfspeech.data.file_names import mojibake_intended

    assert mojibake_intended("cafÃ©") == "café"
    assert mojibake_intended("cafÃƒÂ©") == "café"  # saved wrongly twice
    assert mojibake_intended("æ—¥æœ¬") == "日本"
    assert {word: mojibake_intended(word) for word in REAL_WORDS} == dict.fromkeys(REAL_WORDS)
    assert encode_labels(labels_of(*REAL_WORDS))["train"].features["label"].num_classes == len(REAL_WORDS)


@pytest.mark.parametrize("cell", ["#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!"])
def test_spreadsheet_error_cell_as_label_is_refused(cell):
    with pytest.raises(DataError, match=rf"row 3: the label '{re.escape(cell)}' is a spreadsheet's error value"):
        encode_labels(labels_of("up", "up", cell), source={"train_file": "m.csv"})


def test_group_in_composed_and_decomposed_unicode_is_one_group(tmp_path):
    composed, decomposed = unicodedata.normalize("NFC", "Zoë"), unicodedata.normalize("NFD", "Zoë")
    manifest = written(tmp_path, "g.csv", f"path,label,speaker\na.wav,up,{composed}\nb.wav,up,{decomposed}\n")
    assert set(read_groups(manifest, "speaker")[2]) == {composed}


def test_fold_folders_alike_in_case_and_composition_are_refused():
    with pytest.raises(DataError, match="row 2: speaker .* differ only in case"):
        check_fold_folder_names("m.csv", "speaker", [unicodedata.normalize("NFC", "Zoë"),
                                                      unicodedata.normalize("NFD", "ZOË")])


@pytest.mark.parametrize("encoding, bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE)])
def test_utf16_with_byte_order_mark_is_read(tmp_path, encoding, bom):
    path = tmp_path / "unicode_text.tsv"
    path.write_bytes(bom + "path\tlabel\r\na.wav\tcafé\r\n".encode(encoding))
    assert read_manifest(str(path)) == ([{"path": "a.wav", "label": "café"}], ["path", "label"])


@pytest.mark.parametrize("separator, first_line", [("\t", ""), (";", ""), (";", "sep=;\r\n"), (",", "sep=,\n")])
def test_csv_separator_is_the_one_that_gives_every_row_the_header_cells(tmp_path, separator, first_line):
    table = io.StringIO()
    csv.writer(table, delimiter=separator).writerows(HEADER_AND_ROWS)  # quotes a cell holding the separator
    text = first_line + table.getvalue()
    rows, columns = read_manifest(written(tmp_path, "m.csv", text))
    assert columns == HEADER_AND_ROWS[0] and [row["speaker"] for row in rows] == ["spk0", "spk1"]


def test_comma_csv_with_semicolon_label_lists_stays_comma_separated(tmp_path):
    rows, columns = read_manifest(written(tmp_path, "m.csv", "path,labels\na.wav,dog;siren\nb.wav,dog;cat\n"))
    assert columns == ["path", "labels"] and rows[0]["labels"] == "dog;siren"


def test_trailing_empty_cells_and_doubled_byte_order_mark_are_ignored(tmp_path, caplog):
    text = "\ufeff\ufeffpath,label,,\r\na.wav,up,,\r\nb.wav,café\r\n"
    rows, columns = read_manifest(written(tmp_path, "m.csv", text))
    assert columns == ["path", "label"]
    assert rows == [{"path": "a.wav", "label": "up"}, {"path": "b.wav", "label": "café"}]
    assert "byte-order mark" in caplog.text


def test_a_ragged_row_with_a_value_beyond_the_header_is_still_refused(tmp_path):
    with pytest.raises(ManifestError, match="row 2 has 3 cells but the header has 2"):
        read_manifest(written(tmp_path, "m.csv", "path,label\na.wav,up\nb.wav,up,extra\n"))


@pytest.mark.parametrize("name, text, encoding", [("sheet.xlsx", "PK", "utf-8"), ("m.csv", "path,label\na.wav,café\n",
                                                                                     "cp1252")])
def test_spreadsheet_refusals_name_excels_save_as_csv_utf8(tmp_path, name, text, encoding):
    with pytest.raises(ManifestError, match=r"Save As › CSV UTF-8 \(Comma delimited\)"):
        read_manifest(written(tmp_path, name, text, encoding))


def test_predict_manifest_of_windows_paths_is_one_error_with_the_hint(tmp_path):
    manifest = written(tmp_path, "m.csv", "path,label\nC:\\data\\a.wav,up\nC:\\data\\b.wav,up\n")
    with pytest.raises(ManifestError, match=r"rows name Windows paths such as 'C:\\\\data\\\\a.wav'"):
        manifest_files(manifest)


@pytest.mark.parametrize("flags", [[], ["--output", "-", "--format", "csv"], ["--json"]])
def test_predict_on_a_stdout_that_cannot_encode_a_name_does_not_crash(tmp_path, monkeypatch, flags):
    from conftest import save_random_baseline

    from hfspeech.cli import main

    model = save_random_baseline(tmp_path / "model", "cnn", ["café", "日本"], 0.02, conv_channels=[4, 8], n_mels=16)
    clip = tmp_path / "日本_1.wav"
    sf.write(clip, np.random.default_rng(0).normal(0, 0.1, 8000).astype("float32"), 16000)
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["predict", str(model), str(clip)] + flags) == 0
    stdout.flush()
    printed = stdout.buffer.getvalue().decode("ascii")
    assert ("\\u65e5\\u672c_1.wav" in printed) and ("caf\\xe9" in printed or "caf\\u00e9" in printed)
    assert stdout.errors == "strict"  # put back for whoever writes next


def test_a_utf8_name_in_an_ascii_locale_is_an_error_not_a_crash(tmp_path):
    (tmp_path / "café.wav").write_bytes(b"RIFF")
    code = ("import os, sys; from hfspeech.data.audio import check_audio_path, AudioFileError\n"
            "try: check_audio_path(os.path.join(sys.argv[1], os.listdir(sys.argv[1])[0]))\n"
            "except AudioFileError as error: print(ascii(str(error)))")
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert "caf\\xe9.wav: the name is UTF-8 but Python reads names as" in done.stdout


def test_capitalised_header_is_matched_when_one_column_fits(tmp_path, caplog):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    manifest = written(tmp_path, "m.csv", "Path,Label,Speaker\na.wav,up,Ann\n")
    with caplog.at_level("INFO", logger="hfspeech.data"):
        assert manifest_files(manifest) == [str(tmp_path / "a.wav")]
        assert read_groups(manifest, "speaker")[2] == ["Ann"]
    assert "column 'Path' read as the 'path' column" in caplog.text
    twice = written(tmp_path, "twice.csv", "Path,PATH,label\na.wav,a.wav,up\n")
    with pytest.raises(ManifestError, match="no 'path' column"):  # two fit: neither is guessed
        manifest_files(twice)


def test_train_and_evaluate_read_a_capitalised_header_as_predict_does(tmp_path):
    """`Path,Label` (Excel's habit) stopped train and evaluate on "missing column(s) ['path', 'label']"."""
    from hfspeech.data.loading import load_audio_dataset

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    manifest = written(tmp_path, "m.csv", "Path,Label\na.wav,up\n")
    dataset = load_audio_dataset(train_file=manifest)
    assert dataset["train"]["label"][:] == ["up"] and dataset["train"]["audio"][0]["path"].endswith("a.wav")


def test_cross_validation_folds_read_a_capitalised_header(tmp_path):
    from hfspeech.training.cross_validation import write_fold_manifests

    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    manifest = written(tmp_path, "m.csv", "Path,Label,Speaker\na.wav,up,Ann\nb.wav,up,Bo\n")
    folds = write_fold_manifests(manifest, "speaker", str(tmp_path / "cv"), 0.0, 0, label_column="label")
    assert sorted(folds) == ["Ann", "Bo"]


def test_predict_takes_train_s_path_column_name_too(tmp_path, capsys):
    """predict's `--path_column` is train's `--path_column_name`: the one a user of both typed was refused."""
    from conftest import save_random_baseline

    from hfspeech.cli import main

    model = save_random_baseline(tmp_path / "model", "cnn", ["a", "b"], 0.02, conv_channels=[4, 8], n_mels=16)
    sf.write(tmp_path / "x.wav", np.random.default_rng(0).normal(0, 0.1, 8000).astype("float32"), 16000)
    manifest = written(tmp_path, "m.csv", "file,label\nx.wav,a\n")
    assert main(["predict", str(model), "--manifest", manifest, "--path_column_name", "file", "--json"]) == 0
    assert "x.wav" in json.dumps(json.loads(capsys.readouterr().out))


def test_a_tab_sep_line_and_a_capitalised_labels_header_are_read(tmp_path):
    """Review 2: `sep=<tab>` lost its tab to strip() and was read as a one-column header; `Path,Labels` stopped on
    "missing column(s) ['label']" where `Path,Label` was read."""
    from hfspeech.data.loading import load_audio_dataset

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    assert read_manifest(written(tmp_path, "t.csv", "sep=\t\npath\tlabel\na.wav\tup\n"))[1] == ["path", "label"]
    dataset = load_audio_dataset(train_file=written(tmp_path, "m.csv", "Path,Labels\na.wav,up\n"))
    assert dataset["train"]["label"][:] == ["up"]
