"""The torchcodec + ffmpeg decodes: of a whole clip (`audio.decode_audio`'s and the server's single read) and of a
long file in chunks (`ffmpeg_blocks`, `audio.iter_audio_chunks`'s).

`decode_audio` leaves to ffmpeg what libsndfile cannot read (M4A, Opus, WebM ...), an MP3 without a frame count
and a FLAC of undeclared length; the server (`serve.upload_audio`) decodes those last two once, no further than
a little past its `--max_seconds`. Both go through `decode_with_ffmpeg`, so both refuse a playlist or script
before ffmpeg opens it (`media_references`), refuse a sample rate no audio has before resampling
(`samples.rate_problem`), and decode with `datasets.Audio`'s decoder (mono at the model's rate, mixed by ffmpeg).
A machine where torchcodec cannot load FFmpeg's libraries is named as such (`system_libraries`), never as a
corrupt file that `--skip_bad_files` would skip.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Optional

import numpy as np

from hfspeech.data.media_references import file_for_ffmpeg, refuse_media_references
from hfspeech.data.samples import rate_problem
from hfspeech.data.system_libraries import raise_if_machine_cannot_decode
from hfspeech.features.waveform import ZERO_LENGTH  # the one wording of an empty clip


def decode_with_ffmpeg(value: dict[str, Any], name: str, sampling_rate: int, stop_seconds: Optional[float] = None,
                       stream_rate: int = 0, none_if_undecodable: bool = False,
                       source_rates: Optional[list[int]] = None) -> Optional[np.ndarray]:
    """`decode_audio` by torchcodec + ffmpeg (`datasets.Audio`), mixed to mono by ffmpeg, or an `AudioFileError`
    naming `name`. ffmpeg mixes by its layout matrices, and only the channel counts it has a layout for (1 to 8,
    16, 24). `stop_seconds`: decode no further (short of it, the samples are the whole decode's, bit for bit;
    past it, cut there, less what the decoder trims from the start: an encoder's delay). `stream_rate`: None
    when the stream's rate is not this one (0: any). `none_if_undecodable`: None instead of the error for what
    ffmpeg cannot decode (the server then leaves the naming to `decode_audio`); never for a machine without FFmpeg
    (`system_libraries.FfmpegUnavailableError`). `source_rates`: given, the stream's own rate is appended."""
    from datasets import Audio  # here: files libsndfile reads never need datasets (nor torch)

    from hfspeech.data.audio import AudioFileError  # audio.py imports this module

    refuse_media_references(value["bytes"] if value["bytes"] is not None else value["path"], name)
    if value["bytes"] is None:  # not `concat:x.wav`, a protocol
        value = {"path": file_for_ffmpeg(value["path"]), "bytes": None}
    try:
        decoder = Audio(sampling_rate=sampling_rate, num_channels=1).decode_example(value)
        if problem := rate_problem(decoder.metadata.sample_rate):  # before it resamples to `sampling_rate`
            raise AudioFileError(name, problem)
        if stream_rate and decoder.metadata.sample_rate != stream_rate:
            return None
        if source_rates is not None:
            source_rates.append(decoder.metadata.sample_rate)
        if stop_seconds is None:
            return decoder.get_all_samples().data.numpy()
        return decoder.get_samples_played_in_range(0, stop_seconds).data.numpy()
    except AudioFileError:
        raise
    except Exception as error:  # torchcodec/ffmpeg raise many types; the cause is kept in the chain
        raise_if_machine_cannot_decode(name, error)
        if none_if_undecodable:
            return None
        if "No audio frames were decoded" in short_reason(error):
            raise AudioFileError(name, ZERO_LENGTH) from error
        raise undecodable(name, error) from error


def undecodable(name: str, error: Exception):
    """The `AudioFileError` of a clip ffmpeg cannot decode, with ffmpeg's own reason (`short_reason`)."""
    from hfspeech.data.audio import AudioFileError  # audio.py imports this module

    return AudioFileError(name, f"cannot be decoded as audio (corrupt or unsupported format): {short_reason(error)}")


def short_reason(error: Exception) -> str:
    """The decoder's own words without torchcodec's C++ source location ('File.cpp:52, ')."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return re.split(r"\.cpp:\d+, ", text)[-1]


def ffmpeg_blocks(name: str, chunk_seconds: int) -> tuple[int, Iterator[np.ndarray]]:
    """(the file's rate, mono float32 blocks of `chunk_seconds` decoded by torchcodec + ffmpeg): `iter_audio_chunks`
    for a file libsndfile cannot read; an `AudioFileError` as `decode_with_ffmpeg` raises it."""
    refuse_media_references(name, name)
    try:
        from torchcodec.decoders import AudioDecoder  # here: a machine without FFmpeg fails the import

        decoder = AudioDecoder(file_for_ffmpeg(name), num_channels=1)
    except Exception as error:
        raise_if_machine_cannot_decode(name, error)
        raise undecodable(name, error) from error

    def blocks() -> Iterator[np.ndarray]:
        start = 0
        while True:
            try:
                samples = decoder.get_samples_played_in_range(start, start + chunk_seconds).data.numpy()
            except Exception as error:  # the range past the end raises "No audio frames were decoded"
                if "No audio frames were decoded" in short_reason(error):
                    return
                raise undecodable(name, error) from error
            samples = np.ascontiguousarray(samples.reshape(-1), dtype=np.float32)
            if samples.size == 0:
                return
            start += chunk_seconds
            yield samples

    return decoder.metadata.sample_rate, blocks()
