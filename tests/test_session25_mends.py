"""Small mends of the twenty-fifth session's audits (their left-alone lists)."""

import json
import re
import time

import pytest

from hfspeech.data.groups import read_groups


def test_a_jsonl_group_number_zero_is_a_group_not_an_empty_cell(tmp_path):
    manifest = tmp_path / "clips.jsonl"
    rows = [{"audio": f"{i}.wav", "label": "yes", "speaker": speaker} for i, speaker in enumerate([0, 1, 0, False])]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _, _, groups = read_groups(str(manifest), "speaker")
    assert groups == ["0", "1", "0", "False"]


def test_requests_past_max_requests_are_503_busy_and_the_server_recovers(trained_cnn):
    """Many uploads at once each hold a body of up to --max_body_mb and its audio: past --max_requests the
    server answers 503 `busy` (JSON, Retry-After) instead of taking them all into memory."""
    import socket
    import urllib.parse

    import requests

    from hfspeech.serve.launcher import ServerProcess

    with ServerProcess(trained_cnn, "--max_requests", "1", "--request_timeout", "60") as server:
        host, port = urllib.parse.urlsplit(server.url).hostname, urllib.parse.urlsplit(server.url).port
        with socket.create_connection((host, port)) as held:  # a POST whose body has not all arrived yet
            held.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/wav\r\nContent-Length: 1000\r\n\r\nRIFF")
            deadline = time.monotonic() + 30
            while (busy := requests.post(server.url, data=b"RIFF", timeout=30)).status_code != 503:
                assert time.monotonic() < deadline, busy.text  # the held request reaches the app first
                time.sleep(0.2)
            assert busy.json()["kind"] == "busy" and busy.headers["Retry-After"] == "1"
            assert requests.get(server.url + "/health", timeout=30).status_code == 200  # probes still answer
        deadline = time.monotonic() + 30
        while requests.post(server.url, data=b"", timeout=30).status_code == 503:  # the held one has ended
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert requests.post(server.url, data=b"", timeout=30).json()["kind"] == "empty_audio"


def _bcresnet():
    import hfspeech.models
    from transformers import AutoConfig, AutoModelForAudioClassification

    hfspeech.models.register()
    return AutoModelForAudioClassification.from_config(AutoConfig.for_model("hfspeech-bcresnet", num_labels=2))


def test_layerwise_decay_reaches_bc_resnet_stages_lowest_slowest():
    """BC-ResNet's parameters are `stages.N.M` (no `layers.N`): the flag gave every one the same rate, silently."""
    from hfspeech.training.optim import parameter_groups

    model = _bcresnet()
    groups = parameter_groups(model, 1e-3, 0.0, set(), layerwise_lr_decay=0.5)
    rate = {id(p): group["lr"] for group in groups for p in group["params"]}
    by_name = {name: rate[id(p)] for name, p in model.named_parameters()}
    stages = sorted({int(name.split("stages.")[1].split(".")[0]) for name in by_name if ".stages." in name})
    stage_rates = [next(r for n, r in by_name.items() if f".stages.{s}." in n) for s in stages]
    assert len(stages) > 1 and stage_rates == sorted(stage_rates) and stage_rates[-1] == 1e-3
    assert by_name["bcresnet.stem.0.weight"] < stage_rates[0]  # below the first stage: slowest


def test_layerwise_decay_on_a_model_without_numbered_layers_is_one_line():
    import pytest

    from hfspeech.errors import UsageError
    from hfspeech.training.optim import parameter_groups

    model = _bcresnet()
    for name, module in list(model.bcresnet.named_children()):
        if name == "stages":
            setattr(model.bcresnet, "steps", module)  # the same layers under a name with no number pattern
            delattr(model.bcresnet, "stages")
    with pytest.raises(UsageError, match="no numbered layers"):
        parameter_groups(model, 1e-3, 0.0, set(), layerwise_lr_decay=0.9)


@pytest.mark.parametrize("fmt, named", [("FLAC", "FLAC"), ("OGG", "Ogg"), ("MP3", "MP3")])
def test_encoded_audio_piped_into_stream_is_refused_not_read_as_pcm(fmt, named):
    """`--follow` and /stream refused FLAC/MP3 bytes; stdin read them as raw PCM: noise firing events. (An MP3
    with no ID3 tag opens with a bare frame sync, which raw PCM can too: not judged, here as in the others.)"""
    import io

    import numpy as np
    import soundfile as sf

    from hfspeech.inference.sources import PcmFormat, stdin_format

    encoded = io.BytesIO()
    sf.write(encoded, np.zeros(16000, dtype=np.float32), 16000, format=fmt)
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00" if fmt == "MP3" else b""  # an empty ID3v2 tag
    with pytest.raises(ValueError, match=f"stdin: is {named} audio"):
        stdin_format(io.BytesIO(tag + encoded.getvalue()), PcmFormat("s16le", 16000, 1))
    raw = np.arange(100, dtype=np.int16).tobytes()
    assert stdin_format(io.BytesIO(raw), PcmFormat("s16le", 16000, 1))[1] == raw  # raw PCM still passes whole


def test_a_device_given_to_an_exported_model_is_warned_not_silently_ignored(trained_cnn, tmp_path, caplog):
    from hfspeech.export import export_onnx
    from hfspeech.inference.classifier import AudioClassifier

    export_onnx(str(trained_cnn), tmp_path / "onnx")
    with caplog.at_level("WARNING", logger="hfspeech.inference.classifier"):
        AudioClassifier.from_pretrained(str(tmp_path / "onnx"), device="cuda")
    assert "device=cuda ignored: the onnx backend runs on the CPU" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hfspeech.inference.classifier"):
        AudioClassifier.from_pretrained(str(tmp_path / "onnx"), device="cpu")
    assert "ignored" not in caplog.text


def test_the_model_cards_warning_lines_show_labels_and_file_names_as_written():
    """The tables escaped labels (`<unk>`, `_silence_`), the warning lines under them did not."""
    from hfspeech.hub.card import _data_section

    text = _data_section(None, {"train": 8, "test": 2}, 0, ["class '<unk>' has no clip in the test split",
                                                          "my_clip_1.wav is in two splits"])
    assert "\\<unk\\>" in text and "my\\_clip\\_1.wav" in text


def test_a_model_saved_whole_onto_a_full_disk_is_one_line(tmp_path):
    """safetensors raises its own SafetensorError (not an OSError) when the disk fills under model.safetensors:
    `tiny-model`, the end of `train`, `average` and `pretrained` ended in its traceback."""
    from tests.test_interruption_audit import assert_one_error_line, hfspeech

    result = hfspeech(["tiny-model", str(tmp_path / "tm")], file_size_limit=40_000)
    assert_one_error_line(result, "cannot write (File too large)", "make room")


def test_a_run_that_wrote_the_output_after_this_one_first_read_it_is_not_written_twice(trained_cnn, tmp_path,
                                                                                       monkeypatch):
    """Two predicts started seconds apart: the second read the output (empty) before its model loaded, the
    first finished meanwhile, and the second wrote every file again (600 rows for 300 files)."""
    from hfspeech.cli import main as cli
    from hfspeech.inference import outputs
    from tests.conftest import write_tone_folder

    clips = write_tone_folder(tmp_path / "clips", clips_per_class=2, rates=(16000, 8000))  # a few do: 6 files
    output = tmp_path / "p.jsonl"
    assert cli(["predict", str(trained_cnn), str(clips), "--output", str(output)]) == 0  # the first run
    rows = output.read_text().splitlines()
    assert len(rows) == 6
    monkeypatch.setattr(outputs, "read_earlier_output", lambda path: (set(), set()))  # as read before it ended
    assert cli(["predict", str(trained_cnn), str(clips), "--output", str(output)]) == 0
    assert output.read_text().splitlines() == rows


def test_an_audio_folders_metadata_without_a_label_column_is_one_line_or_named_by_the_flag(tmp_path):
    """A metadata.csv with `file_name,speaker` was a KeyError traceback, with or without --label_column_name."""
    import numpy as np
    import soundfile as sf

    from hfspeech.data.loading import load_audio_dataset as load_data
    from hfspeech.errors import DataError

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        sf.write(data / f"c{i}.wav", np.full(800, 0.1 * i, dtype=np.float32), 16000)
    (data / "metadata.csv").write_text("file_name,speaker\n" + "".join(f"c{i}.wav,s{i % 2}\n" for i in range(4)))
    with pytest.raises(DataError, match=r"missing column\(s\) \['label'\]; available columns: \['audio', 'speaker'\]"):
        load_data(data_dir=str(data), cache_dir=str(tmp_path / "cache"))
    labels = load_data(data_dir=str(data), cache_dir=str(tmp_path / "cache"), label_column="speaker")["train"]["label"]
    assert sorted(labels) == ["s0", "s0", "s1", "s1"]


def test_report_plots_leave_the_users_matplotlib_backend_alone(tmp_path):
    """`matplotlib.use("Agg")` in every plot switched a notebook's backend (inline figures stopped showing) after
    training or evaluating from Python; figures are drawn on their own canvas now."""
    import subprocess
    import sys

    script = f"""
import matplotlib, numpy as np
matplotlib.use("svg")
from hfspeech.evaluation.report_plots import plot_confusion_matrix, plot_per_class_scores
plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["a", "b"], r"{tmp_path / 'cm.png'}")
plot_per_class_scores({{"a": {{"ap": 0.5, "f1": 0.4, "support": 3}}}}, r"{tmp_path / 'pc.png'}")
print(matplotlib.get_backend())
"""
    backend = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert backend.strip() == "svg"
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" == (tmp_path / "pc.png").read_bytes()[:8]


@pytest.mark.parametrize("flags, message", [
    (["--layerwise_lr_decay", "-0.5"], "must be in (0, 1]"),
    (["--layerwise_lr_decay", "0"], "must be in (0, 1]"),
    (["--layerwise_lr_decay", "0.9", "--freeze_base_model", "True"], "only the head trains"),
])
def test_layerwise_decay_values_that_cannot_work_are_refused_at_parse_time(flags, message):
    from hfspeech.errors import UsageError
    from hfspeech.training.command_line import parse_args

    with pytest.raises(UsageError, match=re.escape(message)):
        parse_args(["--data_dir", "x", "--output_dir", "y", *flags])
