"""Audio files and `audio` cells that ffmpeg would read as lists of other resources, refused wherever hfspeech
decodes (training, evaluation, prediction, calibration, Hub data sets), not only in `hfspeech serve`:

- an ffconcat script named `.mp3` (a folder of clips from anywhere) read a file beside it into the waveform;
- a DASH manifest as a data set row's bytes made the decoding machine send an HTTP GET to the address it named;
- the check is only on ffmpeg's path: a WAV never reaches it; real M4A audio still decodes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

from hfspeech.data.audio import AudioFileError, decode_audio, iter_audio_chunks
from hfspeech.data.media_references import FIRST_READ, media_reference_kind

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

ID3_TAG = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"\0" * 10  # ffmpeg skips it before it probes the format
REFUSAL = "an ffconcat script, not audio: hfspeech does not open the files or addresses an audio file names"


def write_secret(folder) -> None:
    sf.write(folder / "secret.wav", np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)


@pytest.mark.parametrize("prefix", [b"", ID3_TAG], ids=["plain", "behind-id3"])
def test_an_ffconcat_file_does_not_read_the_file_it_names(tmp_path, monkeypatch, prefix):
    """It decoded to the 16,000 samples of `secret.wav`, through `decode_audio` and `iter_audio_chunks` alike."""
    write_secret(tmp_path)
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "clip.mp3"
    script.write_bytes(prefix + b"ffconcat version 1.0\nfile secret.wav\n")
    with pytest.raises(AudioFileError) as refused:
        decode_audio(str(script), 16000)
    assert str(refused.value) == f"{script}: {REFUSAL}"
    with pytest.raises(AudioFileError, match="an ffconcat script, not audio"):
        list(iter_audio_chunks(script.with_suffix(".mp3"), 16000))
    with pytest.raises(AudioFileError, match="an ffconcat script, not audio"):
        decode_audio({"path": None, "bytes": script.read_bytes()}, 16000)


@contextlib.contextmanager
def dash_manifest_watched() -> Iterator[tuple[bytes, list]]:
    """(a DASH manifest naming a local listener's address, the list that says whether anything connected to it:
    `[None]` when nobody did within 3 s of the block's end)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(3)
    connections: list = []
    watcher = threading.Thread(target=lambda: connections.append(_accept(listener)))
    watcher.start()
    manifest = ('<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:'
                'isoff-on-demand:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S"><Period>'
                '<AdaptationSet mimeType="audio/wav"><Representation id="a" bandwidth="1000"><BaseURL>http://127.0'
                f'.0.1:{listener.getsockname()[1]}/x.wav</BaseURL></Representation></AdaptationSet></Period></MPD>')
    try:
        yield manifest.encode(), connections
    finally:
        watcher.join()
        listener.close()


def _accept(listener: socket.socket):
    try:
        connection, _ = listener.accept()
    except OSError:  # timed out: nobody came
        return None
    connection.close()
    return "connected"


def test_a_dash_manifest_in_a_data_set_row_is_not_fetched():
    """ffmpeg's DASH demuxer connected to the address the row's bytes named (a request from inside the network)."""
    with dash_manifest_watched() as (manifest, connections):
        with pytest.raises(AudioFileError) as refused:
            decode_audio({"path": "train/0.mp3", "bytes": manifest}, 16000)
    assert connections == [None], "decoding connected to the address in the row"
    assert str(refused.value).startswith("train/0.mp3: a DASH manifest, not audio")


def test_a_playlist_padded_past_the_first_read_is_still_found(tmp_path):
    """ffmpeg probes up to 5 MB of text without a NUL: the file is read past its first block when none came."""
    playlist = tmp_path / "long.m4a"
    playlist.write_bytes(b" " * (FIRST_READ + 1000) + b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 18731 RTP/AVP 0\r\n")
    assert media_reference_kind(playlist) == "an SDP stream description"
    with pytest.raises(AudioFileError, match="an SDP stream description, not audio"):
        decode_audio(str(playlist), 16000)


def test_only_what_ffmpeg_decodes_is_checked_and_real_audio_still_decodes(tmp_path, fsdd_dir, monkeypatch):
    """WAVs (libsndfile) never pay for the check; an M4A (ffmpeg) is checked and decodes; text after the first NUL
    (where ffmpeg's probes stop) is not taken for a playlist."""
    import torch
    from torchcodec.encoders import AudioEncoder

    from hfspeech.data import ffmpeg_decode  # decode_audio's (and the server's) one way into ffmpeg

    checked = []
    real_check = ffmpeg_decode.refuse_media_references
    monkeypatch.setattr(ffmpeg_decode, "refuse_media_references", lambda *args: checked.append(args[1]) or
                        real_check(*args))
    decode_audio(str(next(fsdd_dir.rglob("*.wav"))), 16000)
    assert checked == []
    clip = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    m4a = tmp_path / "clip.m4a"
    m4a.write_bytes(AudioEncoder(torch.from_numpy(clip)[None], sample_rate=16000).to_tensor(format="mp4")
                    .numpy().tobytes() + b"\0<MPD ffconcat version")
    assert decode_audio(str(m4a), 16000).size >= 16000
    assert checked == [str(m4a)]


def test_a_file_name_is_not_taken_for_an_ffmpeg_protocol(tmp_path, monkeypatch):
    """Given by its bare name (`hfspeech predict *` in the folder), `subfile,,start,0,end,0,,:secret.wav` (junk)
    decoded `secret.wav`, and an M4A named `take:1.m4a` was 'Protocol not found'."""
    import torch
    from torchcodec.encoders import AudioEncoder

    write_secret(tmp_path)
    monkeypatch.chdir(tmp_path)
    junk = "subfile,,start,0,end,0,,:secret.wav"
    (tmp_path / junk).write_bytes(b"not audio at all")
    for read in (lambda: decode_audio(junk, 16000), lambda: list(iter_audio_chunks(junk, 16000))):
        with pytest.raises(AudioFileError, match="cannot be decoded as audio"):
            read()
    clip = np.random.default_rng(2).normal(0, 0.1, 16000).astype(np.float32)
    (tmp_path / "take:1.m4a").write_bytes(AudioEncoder(torch.from_numpy(clip)[None], sample_rate=16000)
                                          .to_tensor(format="mp4").numpy().tobytes())
    assert decode_audio("take:1.m4a", 16000).size >= 16000
    assert sum(chunk.size for chunk in iter_audio_chunks("take:1.m4a", 16000)) >= 16000
