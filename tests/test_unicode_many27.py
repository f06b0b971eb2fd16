"""Unicode names and many classes, end to end: a JSONL manifest written with `ensure_ascii=False` holding the
line separators JSON keeps unescaped, a label holding one, a speaker-ID sized confusion matrix, and class
names in plots that matplotlib's fonts cannot draw (Chinese, emoji, private-use characters)."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest

from hfspeech.data.manifests import read_manifest
from hfspeech.errors import DataError
from test_label_text_audit import encoded_names, write_clips

UNESCAPED_BREAKS = "first\u2028second\u2029third\u0085fourth"  # valid unescaped inside a JSON string


def write_jsonl(path, rows, ensure_ascii: bool) -> str:
    path.write_text("".join(json.dumps(row, ensure_ascii=ensure_ascii) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def test_a_jsonl_manifest_with_unescaped_line_separators_in_a_string_is_read(tmp_path):
    rows = [{"path": "中文/clip #1.wav", "label": "中文", "text": UNESCAPED_BREAKS},
            {"path": "a b/ü.wav", "label": "🐶", "text": "plain"}]
    read, columns = read_manifest(write_jsonl(tmp_path / "m.jsonl", rows, ensure_ascii=False))
    assert read == rows and columns == ["path", "label", "text"]
    crlf = tmp_path / "crlf.jsonl"  # Windows line ends still read
    crlf.write_bytes((tmp_path / "m.jsonl").read_bytes().replace(b"\n", b"\r\n"))
    assert read_manifest(str(crlf))[0] == rows


def test_a_label_holding_a_line_separator_is_refused_naming_the_file(tmp_path):
    clips = write_clips(tmp_path / "wav", ["a\u2028b", "c"])
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"path": path, "label": label} for path, label in clips], True)
    with pytest.raises(DataError, match=r"c0_0\.wav: the label 'a\\u2028b' holds a line break"):
        encoded_names(train_file=manifest)


def test_a_500_class_confusion_matrix_json_has_one_line_a_row(tmp_path):
    from hfspeech.evaluation.report import write_confusion_matrix_json

    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 3, (500, 500))
    labels = [f"说话人 {i:03d}" for i in range(500)]
    path = tmp_path / "test_confusion_matrix.json"
    write_confusion_matrix_json(str(path), matrix, labels)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written == {"labels": labels, "rows": "true label", "columns": "predicted label", "matrix": matrix.tolist()}
    assert len(path.read_text(encoding="utf-8").splitlines()) < 1100  # was 251,000 lines (a count a line)


def test_the_evaluation_report_writes_the_compact_matrix(tmp_path):
    from hfspeech.evaluation.report import write_evaluation_report

    labels = [f"s{i}" for i in range(70)]
    references = np.arange(140) % 70
    write_evaluation_report(str(tmp_path), references, references, labels)
    text = (tmp_path / "test_confusion_matrix.json").read_text(encoding="utf-8")
    assert json.loads(text)["matrix"] == np.eye(70, dtype=int).__mul__(2).tolist()
    assert len(text.splitlines()) < 200  # 70 x 70 counts were 4,900 lines


def test_class_names_no_font_has_stay_apart_in_plots_and_are_told_once(caplog):
    from hfspeech.inference.plot_labels import MISSING, drawable_class_names

    names = ["\ue000\ue001", "\ue002\ue003", "café", "# hash", 'say "hi"']  # private use: in no font
    with caplog.at_level(logging.WARNING, logger="hfspeech"):
        shown = drawable_class_names(names)
        assert drawable_class_names(names) == shown
    assert shown[0] != shown[1] and shown[0].startswith("#0 ") and shown[0].endswith(MISSING * 2)
    assert shown[2:] == names[2:]
    notes = [r.getMessage() for r in caplog.records if "characters matplotlib's fonts lack" in r.getMessage()]
    assert len(notes) == 1 and "'\\ue000\\ue001'" in notes[0]


def test_plots_of_names_no_font_has_raise_no_glyph_warnings(tmp_path, caplog):
    from hfspeech.evaluation.report import write_evaluation_report, write_multilabel_report

    labels = ["中文", "\ue010", "🐶dog", "مرحبا"]
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="hfspeech"):
        warnings.simplefilter("always")
        write_evaluation_report(str(tmp_path), [0, 1, 2, 3], [0, 1, 2, 2], labels)
        truth = np.eye(4, dtype=int)
        write_multilabel_report(str(tmp_path), truth * 0.9, truth, labels, [0.5] * 4)
    assert [str(w.message) for w in caught if "Glyph" in str(w.message)] == []
    assert any("'\\ue010'" in r.getMessage() or "中文" in r.getMessage() for r in caplog.records)
    matrix = json.loads((tmp_path / "test_confusion_matrix.json").read_text(encoding="utf-8"))
    assert matrix["labels"] == labels  # the JSON keeps the names as written


def test_timelines_of_names_no_font_has_are_told_once_without_glyph_warnings(tmp_path, capsys, caplog):
    from conftest import run_cli_output, save_random_baseline

    model = save_random_baseline(tmp_path / "model", "cnn", ["中文\ue020", "🐶"], 0.02, conv_channels=[4, 8], n_mels=16)
    clips = [str(tmp_path / path) for path, _ in write_clips(tmp_path / "wav", ["a", "b"], per_label=1)]
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="hfspeech"):
        warnings.simplefilter("always")
        code, out, err = run_cli_output(["predict", str(model), *clips, "--timeline", str(tmp_path / "t")], capsys)
    assert code == 0 and len(out.splitlines()) == 2
    assert [str(w.message) for w in caught if "Glyph" in str(w.message)] == [] and "Glyph" not in err
    assert caplog.text.count("characters matplotlib's fonts lack") == 1  # once, not once a file
    assert len(list((tmp_path / "t").glob("*.timeline.png"))) == 2


def test_a_folder_name_that_is_not_utf8_is_one_line_naming_it(tmp_path):
    import os

    import soundfile as sf

    root = tmp_path / "data"
    try:
        for name in (b"caf\xe9", b"plain"):  # Latin-1 bytes, as an old archive unpacks them
            folder = os.path.join(os.fsencode(root), name)
            os.makedirs(folder)
            with open(os.path.join(folder, b"c0.wav"), "wb") as f:
                sf.write(f, np.zeros(1600, dtype=np.float32), 16000, format="WAV")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    with pytest.raises(DataError, match=r"caf\\xe9[/\\]c0\.wav: the name is not UTF-8 \(1 such file"):
        encoded_names(data_dir=str(root))


@pytest.mark.parametrize("separator", ["\uff1b", "\uff0c", "\u3001"])  # ；，、
def test_multi_label_cells_split_at_a_full_width_separator_are_refused_not_one_class(tmp_path, separator):
    from test_label_text_audit import write_csv

    rows = write_clips(tmp_path / "wav", [f"狗{separator}警报", "狗", "猫"])
    with pytest.raises(DataError, match=f"holds '{separator}' but no cell holds the label separator ';': set "
                                        f"--label_separator '{separator}'"):
        encoded_names(multi_label=True, train_file=str(write_csv(tmp_path / "m.csv", rows)))


def test_a_timeline_of_a_many_class_model_stays_a_readable_size(tmp_path, capsys):
    from PIL import Image

    from conftest import run_cli_output, save_random_baseline

    labels = [f"speaker_{i:03d}" for i in range(200)]
    model = save_random_baseline(tmp_path / "model", "cnn", labels, 0.02, conv_channels=[4, 8], n_mels=16)
    clip = tmp_path / write_clips(tmp_path / "wav", ["a"], per_label=1)[0][0]
    code, _, _ = run_cli_output(["predict", str(model), str(clip), "--timeline", str(tmp_path / "t")], capsys)
    assert code == 0
    width, height = Image.open(tmp_path / "t" / "c0_0.timeline.png").size
    assert height <= 2400  # was 7,120 pixels (35 per label); 2,000 labels: 70,120
    written = json.loads((tmp_path / "t" / "c0_0.timeline.json").read_text(encoding="utf-8"))
    assert written["labels"] == labels
