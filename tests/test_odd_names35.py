"""Names that are not UTF-8 (`caf\\xe9`, bytes from an old archive) and an ASCII locale (LC_ALL=C, PYTHONUTF8=0):
one line naming the file, the row or the folder and the problem, before any work, never a traceback (helper NN)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hfspeech.errors import DataError, HfspeechError, UsageError

from conftest import TINY_CNN, run_cli_output, save_random_baseline, write_tone_folder


def write_wav(path: bytes | str) -> None:
    """A 0.2-s tone at 8 kHz under any name (bytes too: a name that is not UTF-8)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        sf.write(handle, (0.3 * np.sin(np.arange(1600) * 0.2)).astype("float32"), 8000, format="WAV")


def latin1_clip(tmp_path: Path) -> str:
    """`DIR/cafe/r\\xe9sum\\xe9.wav`, as `os.listdir` names it (the surrogates `\\udce9`)."""
    write_wav(os.fsencode(tmp_path) + b"/cafe/r\xe9sum\xe9.wav")
    write_wav(str(tmp_path / "cafe" / "c0.wav"))
    write_wav(str(tmp_path / "tea" / "c0.wav"))
    return os.path.join("cafe", next(name for name in os.listdir(tmp_path / "cafe") if name != "c0.wav"))


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")  # `\udce9` escapes
    return str(path)


def test_a_manifest_path_not_utf8_is_one_line_naming_the_row(tmp_path):
    from hfspeech.data.loading import load_audio_dataset

    name = latin1_clip(tmp_path)
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"path": "cafe/c0.wav", "label": "cafe"},
                                                  {"path": name, "label": "cafe"}])
    with pytest.raises(DataError) as caught:  # was pyarrow's UnicodeEncodeError "surrogates not allowed"
        load_audio_dataset(train_file=manifest)
    assert str(caught.value).startswith(f"{manifest}: row 2: path cafe/r\\xe9sum\\xe9.wav: the name is not UTF-8")


def test_a_manifest_label_not_utf8_is_one_line_naming_the_row(tmp_path):
    from hfspeech.data.loading import load_audio_dataset

    latin1_clip(tmp_path)
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"path": "cafe/c0.wav", "label": "caf\udce9"},
                                                  {"path": "tea/c0.wav", "label": "tea"}])
    with pytest.raises(DataError, match=r"row 1: the label value caf\\xe9 is not UTF-8 text \(it holds \\udce9"):
        load_audio_dataset(train_file=manifest)


def test_cross_validate_refuses_a_group_not_utf8_or_too_long_before_writing(tmp_path):
    from hfspeech.training.cross_validation import write_fold_manifests

    latin1_clip(tmp_path)
    rows = [{"path": "cafe/c0.wav", "label": "cafe", "speaker": "caf\udce9"},
            {"path": "tea/c0.wav", "label": "cafe", "speaker": "tea"}]
    out = tmp_path / "cv"
    with pytest.raises(DataError, match=r"row 1: the speaker value caf\\xe9 is not UTF-8 text"):
        write_fold_manifests(write_jsonl(tmp_path / "s.jsonl", rows), "speaker", str(out), 0.0, 0)
    long = [{**rows[0], "speaker": "G" * 251}, rows[1]]  # fold-GGG... is 256 bytes: "File name too long"
    with pytest.raises(DataError, match=r"row 1: speaker 'G{20}'\.\.\. cannot name a fold folder .*251 bytes"):
        write_fold_manifests(write_jsonl(tmp_path / "l.jsonl", long), "speaker", str(out), 0.0, 0)
    assert not out.exists()  # `fold-tea` was written before the crash


def test_train_refuses_an_output_dir_not_utf8_before_training(tmp_path):
    from hfspeech.training.run import main

    data = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(8000,))
    output = os.fsdecode(os.fsencode(tmp_path) + b"/out\xe9")
    args = ["--data_dir", str(data), "--output_dir", output, "--model_type", "cnn", "--config_overrides", TINY_CNN,
            "--num_train_epochs", "1", "--max_length_seconds", "0.5", "--report_to", "none"]
    for more in ([], ["--overwrite_output_dir"]):  # trained to the end, then safetensors: "Path ... not valid UTF-8"
        with pytest.raises(UsageError, match=r"--output_dir .*/out\\xe9: the name is not UTF-8, and a model"):
            main(args + more)
        assert not os.path.lexists(output)


def test_average_and_export_refuse_an_output_folder_not_utf8(tmp_path, capsys):
    runs = [str(save_random_baseline(tmp_path / name, "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16))
            for name in ("r1", "r2")]
    for command in (["average", *runs, "--output_dir"], ["export", runs[0], "--format", "onnx", "--output"]):
        output = os.fsdecode(os.fsencode(tmp_path) + b"/out\xe9")
        code, _, err = run_cli_output([*command, output], capsys)
        assert code == 2 and err.count("\n") == 1 and "out\\xe9: the name is not UTF-8, and a model" in err, err
        assert not os.path.lexists(output)


def test_a_model_folder_not_utf8_is_named_so_not_corrupt(tmp_path, capsys):
    from hfspeech.export.loading import read_config
    from hfspeech.hub.stage import check_destination, check_run
    from hfspeech.inference.classifier import AudioClassifier

    model = os.fsdecode(os.fsencode(tmp_path) + b"/mod\xe9")
    save_random_baseline(Path(model), "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    said = "mod\\xe9: the name is not UTF-8 (e.g. Latin-1"
    for load in (AudioClassifier.from_pretrained, read_config, lambda folder: check_run(Path(folder), False),
                 lambda folder: check_destination(Path(folder) / "staged")):  # was "corrupt", "damaged"
        with pytest.raises(HfspeechError) as caught:
            load(model)
        assert said in str(caught.value) or "the name is not UTF-8, and a model" in str(caught.value), caught.value
    write_wav(str(tmp_path / "a.wav"))
    code, _, err = run_cli_output(["predict", model, str(tmp_path / "a.wav")], capsys)
    assert code == 2 and said in err and "corrupt" not in err


def test_a_label_folder_with_a_line_break_is_named_as_it_is(tmp_path):
    from hfspeech.data.labels import encode_labels
    from hfspeech.data.loading import load_audio_dataset

    for label in ("new\nline", "ok"):
        write_wav(str(tmp_path / label / "c0.wav"))
    dataset = load_audio_dataset(data_dir=str(tmp_path))
    with pytest.raises(DataError) as caught:  # named `.../new line/c0.wav` once on one line: no such file
        encode_labels(dataset, source={"data_dir": str(tmp_path)})
    assert "new\\nline/c0.wav'" in str(caught.value) and "\n" not in str(caught.value)


def test_ignored_names_not_utf8_are_shown_with_their_bytes(tmp_path):
    from hfspeech.data.folders import list_audio_folder

    latin1_clip(tmp_path / "data")
    os.remove(os.fsencode(tmp_path) + b"/data/cafe/r\xe9sum\xe9.wav")
    (Path(os.fsdecode(os.fsencode(tmp_path) + b"/data/cafe/notes\xe9.txt"))).write_text("x")
    listing = list_audio_folder(tmp_path / "data")
    [ignored] = listing.ignored
    assert ignored["path"].endswith("cafe/notes\\xe9.txt")  # data_report.json held the surrogate `\udce9`
    json.dumps(listing.ignored, ensure_ascii=False).encode("utf-8")


def test_stream_follow_names_a_missing_file_with_its_bytes(tmp_path, capsys):
    missing = os.fsdecode(os.fsencode(tmp_path) + b"/missing\xe9.raw")
    code, _, err = run_cli_output(["stream", str(tmp_path), "--follow", missing], capsys)
    assert code == 2 and "missing\\xe9.raw: no such file" in err


ASCII_LOCALE_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hfspeech.data.audio import check_audio_path
    from hfspeech.data.loading import load_audio_dataset
    from hfspeech.errors import HfspeechError

    root = Path(sys.argv[1])
    print(sys.getfilesystemencoding())
    for attempt in (lambda: load_audio_dataset(data_dir=str(root / "data")),
                    lambda: load_audio_dataset(train_file=str(root / "m.csv")),
                    lambda: check_audio_path(str(root / "data" / "yes" / "caf\\u00e9.wav"))):
        try:
            attempt()
        except HfspeechError as error:
            print(error)
""")


def test_utf8_names_under_an_ascii_locale_say_how_to_run(tmp_path):
    """LC_ALL=C with PYTHONUTF8=0 (and no PEP 538 coercion: LC_ALL set keeps it off): Python reads names as ascii."""
    for label in ("yes", "no"):
        write_wav(str(tmp_path / "data" / label / "caf\u00e9.wav"))
    (tmp_path / "m.csv").write_text("path,label\ndata/yes/caf\u00e9.wav,yes\ndata/no/caf\u00e9.wav,no\n",
                                    encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONIOENCODING": "utf-8:backslashreplace",  # the messages printed, not how names are read
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", ASCII_LOCALE_SCRIPT, str(tmp_path)], env=env, capture_output=True,
                          text=True, errors="backslashreplace", timeout=120)
    lines = done.stdout.splitlines()
    if not lines or lines[0] != "ascii":
        pytest.skip(f"Python reads names as {lines[:1]} under LC_ALL=C here: {done.stderr[-300:]}")
    said = "the name is UTF-8 but Python reads names as ascii (an ASCII locale): run with PYTHONUTF8=1"
    assert len(lines) == 4 and all(said in line for line in lines[1:]), done.stdout + done.stderr[-2000:]
    assert "m.csv: row 1: path data/yes/caf" in lines[2]  # was "do not exist"; the folder's "convmv -f latin1"


def test_a_label_folder_with_a_tab_is_told_to_be_renamed_not_to_check_quotes(tmp_path):
    """"(check the quotes)" is a manifest cell's mend (an unclosed quote); a folder's name is renamed."""
    from hfspeech.data.labels import encode_labels
    from hfspeech.data.loading import load_audio_dataset

    for label in ("a\tb", "ok"):
        write_wav(str(tmp_path / label / "c0.wav"))
    dataset = load_audio_dataset(data_dir=str(tmp_path))
    with pytest.raises(DataError) as caught:
        encode_labels(dataset, source={"data_dir": str(tmp_path)})
    assert "control character; rename that folder" in str(caught.value), caught.value


def test_tiny_model_refuses_an_output_folder_not_utf8(tmp_path, capsys):
    output = os.fsdecode(os.fsencode(tmp_path) + b"/tiny\xe9")
    code, _, err = run_cli_output(["tiny-model", output, "--model_type", "wav2vec2"], capsys)
    assert code == 2 and "tiny\\xe9: the name is not UTF-8, and a model" in err, err
    assert not os.path.lexists(output)
