"""The review's mends on the input side: one WAV-or-raw-PCM sniffer for every live source, an MP3 header read
from the frame its caller found, one listing of `export --eval_dir`.

- stdin (`hfspeech stream`), `--follow` and `/stream` (serve) read a stream's first bytes through one
  `wav_or_raw`, so the same bytes are the same format, offset or refusal in all three. A `/stream` WebSocket
  whose first binary message was empty decided "raw PCM" on it: the WAV that followed had its header read as
  samples, at the query's rate.
- `export --eval_dir` listed the folder three times (the check, the comparison, the heard-clips check).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from hfspeech.inference.sources import PcmFormat, followed_format, stdin_format, wav_or_raw
from tests.conftest import save_random_baseline, synth_clip

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

QUERY_FORMAT = PcmFormat("s16le", 16000, 1)


def wav_bytes(rate: int = 8000, subtype: str = "PCM_16", channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    samples = np.tile(synth_clip("low", np.random.default_rng(0), rate, 0.6)[:, None], (1, channels))
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def read_by_stdin(data: bytes):
    pipe = io.BytesIO(data)
    try:
        pcm, rest = stdin_format(pipe, QUERY_FORMAT, read_bytes=5)
    except ValueError as error:
        return str(error).replace("stdin", "SOURCE")
    return pcm, pipe.tell() - len(rest)  # where the samples start


def read_by_follow(data: bytes, tmp_path):
    path = tmp_path / "take.raw"
    path.write_bytes(data)
    try:
        pcm, offset = followed_format(str(path), QUERY_FORMAT, idle_timeout=0)
    except ValueError as error:
        return str(error).replace(str(path), "SOURCE")
    return pcm, offset


@pytest.mark.parametrize("case", ["wav", "float wav", "stereo wav", "raw", "short raw", "24-bit wav", "not wave"])
def test_stdin_and_follow_read_the_same_bytes_as_wav_or_raw_says(case, tmp_path):
    data = {"wav": wav_bytes(), "float wav": wav_bytes(22050, "FLOAT"), "stereo wav": wav_bytes(channels=2),
            "raw": bytes(range(1, 101)), "short raw": b"\x01\x02", "24-bit wav": wav_bytes(subtype="PCM_24"),
            "not wave": b"RIFF\x10\x00\x00\x00WAVX" + bytes(40)}[case]
    try:
        found = wav_or_raw(data, "SOURCE", ended=True)
        expected = (QUERY_FORMAT if found[0] is None else found[0], found[1])
    except ValueError as error:
        expected = str(error)
    if case in ("wav", "float wav", "stereo wav"):
        assert expected[0] == PcmFormat("f32le" if case == "float wav" else "s16le", 22050 if case == "float wav"
                                        else 8000, 2 if case == "stereo wav" else 1)
        assert expected[1] == data.find(b"data") + 8
    assert read_by_stdin(data) == expected
    if case != "short raw":  # 1-3 bytes of a file may be the start of a WAV header still being written
        assert read_by_follow(data, tmp_path) == expected


def test_a_wav_header_cut_short_waits_while_more_may_come_and_is_refused_at_the_end():
    head = wav_bytes()[:30]
    assert wav_or_raw(head, "SOURCE") is None and wav_or_raw(head[:3], "SOURCE") is None
    with pytest.raises(ValueError, match="^SOURCE: the WAV header ended before its samples$"):
        wav_or_raw(head, "SOURCE", ended=True)
    assert wav_or_raw(head[:3], "SOURCE", ended=True) == (None, 0)  # 3 bytes: raw PCM (one sample and a byte)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from hfspeech.inference.classifier import AudioClassifier

    folder = save_random_baseline(tmp_path_factory.mktemp("cnn"), "cnn", ["low", "high"], 0.5)
    return AudioClassifier.from_pretrained(str(folder))


def live_stream(classifier):
    from hfspeech.inference.sources import PcmDecoder
    from hfspeech.inference.streaming import StreamingClassifier
    from hfspeech.serve.stream import LiveStream

    def make_streamer(rate: int) -> StreamingClassifier:
        return StreamingClassifier(classifier, None, None, input_rate=rate, min_windows=1)

    return LiveStream(PcmDecoder(QUERY_FORMAT), make_streamer(QUERY_FORMAT.rate), True, None, restart=make_streamer)


def test_an_empty_first_websocket_message_leaves_the_wav_header_to_be_read(classifier):
    data = wav_bytes()
    plain, after_empty = live_stream(classifier), live_stream(classifier)
    expected = plain.feed(data) + plain.finish()
    got = after_empty.feed(b"") + after_empty.feed(data) + after_empty.finish()
    assert after_empty.decode.pcm == PcmFormat("s16le", 8000, 1)  # was: the query's 16 kHz, the header as samples
    assert got == expected and round(expected[-1]["samples"] / classifier.sampling_rate, 2) == 0.6  # 0.6 s of audio


def test_export_eval_dir_lists_its_folder_once(tmp_path, monkeypatch, capsys):
    from hfspeech.cli import main as cli
    from hfspeech.data import folders

    model = save_random_baseline(tmp_path / "cnn", "cnn", ["low", "high"], 0.5)
    for label in ("low", "high"):
        (tmp_path / "held_out" / label).mkdir(parents=True)
        sf.write(tmp_path / "held_out" / label / "a.wav", synth_clip(label, np.random.default_rng(1), 16000), 16000)
    listed = []
    real_listing = folders.walk_audio_files  # the int8 gate reads the folder as training does (labelled_clips)
    monkeypatch.setattr(folders, "walk_audio_files", lambda folder, *a, **k: listed.append(str(folder)) or
                        real_listing(folder, *a, **k))
    assert cli(["export", str(model), "--quantize", "int8", "--eval_dir", str(tmp_path / "held_out"),
                "--output", str(tmp_path / "onnx"), "--force"]) == 0
    assert "int8 check: 2 clips" in capsys.readouterr().out
    assert listed == [str(tmp_path / "held_out")]  # was: three listings of the same folder


def id3_tagged(data: bytes, tag_bytes: int = 300) -> bytes:
    """`data` behind an ID3v2.4 tag of `tag_bytes` of padding (its size synchsafe, 7 bits a byte)."""
    return b"ID3\x04\x00\x00" + bytes((tag_bytes >> shift) & 0x7F for shift in (21, 14, 7, 0)) + bytes(tag_bytes) + data


def test_an_mp3_behind_an_id3_tag_is_judged_by_the_frame_after_the_tag():
    """`read_mp3_length` reads the frame `inspect_mp3` found after the tag (it used to look for it again)."""
    from hfspeech.data.audio import AudioFileError, decode_audio
    from hfspeech.data.mp3_header import inspect_mp3
    from tests.test_data_scale_audit import RATE, mp3_bytes

    whole = id3_tagged(mp3_bytes(2.0))
    declared = inspect_mp3(None, whole).length
    assert declared.sampling_rate == RATE and 2.0 <= declared.samples / RATE < 2.3  # with delay and padding
    assert abs(decode_audio({"path": None, "bytes": whole}, RATE).size - 2 * RATE) < 0.1 * RATE
    with pytest.raises(AudioFileError, match=r"truncated MP3: header declares about 2\.\d+ s"):
        decode_audio({"path": None, "bytes": whole[: len(whole) // 2]}, RATE)
