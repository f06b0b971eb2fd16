"""How much audio an upload holds, found before it is decoded whole.

The body limit bounds the bytes, not the audio: 180 KB of FLAC silence decodes to two hours, and a 20 KB WAV
at 1 Hz to 20,000 s, which resampled to the model's rate took 1.7 GB of memory before `--max_seconds` was
checked on the decoded waveform. A 25 MB upload of either would take tens of gigabytes to terabytes. Here the
upload's length is found first, at its own rate: from the header of PCM (WAV, AIFF ...: its data's size),
by decoding FLAC, Ogg and MP3 in blocks that are dropped as they are read (libsndfile, the decoder
`decode_audio` uses for them; their headers may declare no length, or a false one), and for what only
ffmpeg decodes (WebM, Opus, M4A, an MP3 libsndfile may stop early in; a FLAC whose header declares no length, a
WAV whose data size is 0, an Ogg whose first stream is empty: libsndfile finds no length or nothing) by decoding
it with torchcodec a frame at a time, counting samples, not timestamps (an upload writes those as it likes), to
just past the limit: `decode_audio` then decodes no more than was counted. An upload that none can open is left
to `decode_audio`, whose error names it. Seconds are at the upload's own rate, however low (5,000 samples "at
1 Hz" are 5,000 s: 413); one within the limit whose rate is below 1000 Hz is refused by `decode_audio`
(`samples.rate_problem`). `upload_audio.decode_upload` reads what declares at most the limit (libsndfile reads no
more) and an MP3 without a frame count (ffmpeg, to 1 s past the limit) once, uncounted; a piped FLAC is counted
here (`ffmpeg_seconds`) before its one bounded decode; this module measures the rest.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile

from hfspeech.data.mp3_header import inspect_mp3
from hfspeech.data.samples import UNDECLARED_FRAMES
from hfspeech.data.wav_header import inspect_wav
from hfspeech.serve.errors import ApiError

BLOCK_FRAMES = 1 << 16
COMPRESSED = ("FLAC", "OGG", "MP3")  # libsndfile formats whose header may not say (or say truly) how long they are


def refuse_audio_longer_than(audio: bytes, max_seconds: float) -> None:
    """413 when `audio` plays for more than `max_seconds`, without holding more than a block of it."""
    if inspect_wav(None, audio):  # a damaged WAV: decode_audio names the damage at once, no decoder needed
        return
    seconds = _libsndfile_seconds(audio, max_seconds) or 0.0
    # None or 0 found (no declared length, a WAV whose writer left its data size 0, an Ogg whose first stream is
    # empty): ffmpeg decodes it in `decode_audio`, so it counts; libsndfile may stop early in an MP3 (counted
    # past the limit already: refused without decoding it again)
    if (not seconds or inspect_mp3(None, audio) is not None) and seconds <= max_seconds:
        seconds = max(seconds, ffmpeg_seconds(audio, max_seconds))
    if seconds > max_seconds:
        raise too_long(max_seconds)


def too_long(max_seconds: float) -> ApiError:
    """The 413 of an upload found to hold more than `max_seconds`, however it was found."""
    return ApiError(413, "audio_too_long", f"upload: more than {max_seconds:g} s of audio (the limit, --max_seconds)")


def _libsndfile_seconds(audio: bytes, max_seconds: float) -> float | None:
    """Seconds of audio counted up to just past `max_seconds`, or None when libsndfile cannot open it or its header
    declares no length (`UNDECLARED_FRAMES`: soundfile cannot read such a file to its end, ffmpeg decodes it)."""
    try:
        opened = soundfile.SoundFile(io.BytesIO(audio))
    except Exception:  # not a format libsndfile reads, or a damaged header: decode_audio says which
        return None
    with opened:
        if opened.frames >= UNDECLARED_FRAMES:
            return None
        limit, frames = max_seconds * opened.samplerate, 0
        if opened.format not in COMPRESSED:  # PCM: the header counts its data's frames
            return opened.frames / opened.samplerate
        # Counted in blocks: a compressed header's length may be false
        block = np.empty((BLOCK_FRAMES, opened.channels), dtype=np.int16)
        try:
            while frames <= limit and (read := len(opened.read(BLOCK_FRAMES, dtype="int16", out=block))):
                frames += read
        except Exception:  # damaged part-way: decode_audio names it
            return None
        return frames / opened.samplerate


def ffmpeg_seconds(audio: bytes, max_seconds: float) -> float:
    """Seconds of audio ffmpeg decodes from `audio` at its own rate, counted frame by frame and dropped as counted,
    up to just past `max_seconds`; 0 when torchcodec cannot open it (decode_audio names it); 400 when it opens it
    but reports no sample rate: samples cannot be counted as seconds, and the 0 s answered then passed an upload
    of any length (the check failed open). Counted in samples, not timestamps, which an upload writes as it
    likes: torchcodec's ranges are cut by timestamps, so a window past the limit missed a WebM whose timestamps
    run slow (600 s of it passed a limit of 10 s) and a range up to the limit decodes the whole of one whose
    timestamps run fast. `get_next_frame` is torchcodec's private core call (`torchcodec==0.13.0` is pinned): the
    only one that decodes a frame at a time."""
    try:
        from torchcodec import _core
        from torchcodec.decoders import AudioDecoder

        decoder = AudioDecoder(audio)  # no resampler, no mix: only the count is kept
    except Exception:  # torchcodec raises many types; an upload it cannot read is named by decode_audio
        return 0.0
    if not (rate := decoder.metadata.sample_rate):
        raise ApiError(400, "undecodable_audio", "upload: cannot be decoded as audio: its stream declares no sample "
                       "rate, so its length cannot be measured")
    limit, frames = max_seconds * rate, 0
    try:
        while frames <= limit:
            frames += _core.get_next_frame(decoder._decoder)[0].shape[-1]
    except Exception:  # the end of the stream (IndexError), or damage part-way, which decode_audio names
        pass
    return frames / rate
