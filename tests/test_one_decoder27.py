"""The server's single read of an upload of undeclared length (a piped FLAC, an MP3 without a frame count) is
`decode_audio`'s own ffmpeg decode (`data.ffmpeg_decode`), not a copy of it: it passes the same checks (a
playlist or script refused before ffmpeg opens it) and gives the same waveform, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from test_audio27 import UNDECLARED, stereo

from hfspeech.data import ffmpeg_decode
from hfspeech.data.audio import decode_audio
from hfspeech.serve.upload_audio import decode_upload

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.mark.parametrize("kind", sorted(UNDECLARED))
def test_an_upload_of_undeclared_length_goes_through_the_data_layers_ffmpeg_decode(kind, monkeypatch):
    checked = []
    real_check = ffmpeg_decode.refuse_media_references
    monkeypatch.setattr(ffmpeg_decode, "refuse_media_references",
                        lambda source, name: checked.append(name) or real_check(source, name))
    upload = UNDECLARED[kind](stereo(8000, 2.0), 8000)
    waveform = decode_upload(upload, 16000, max_seconds=30.0)
    assert checked == ["<audio bytes without a file name>"]  # the server's copy never looked
    assert np.array_equal(waveform, decode_audio({"path": None, "bytes": upload}, 16000))
