"""libsndfile's read of a whole clip, block by block: each block mixed to mono, measured for the cancelled-mix check
and resampled as it is read, so a decode holds the mono waveform at the model's rate, never the file's channels at
the file's rate.

Why: `soundfile.read` of a whole clip held every channel as float32 at the file's own rate, then the mix, then a
float64 square of every sample (the cancelled-mix check). A 245 KB FLAC of 599 s of 8-channel 96 kHz silence, within
`serve --max_seconds 600` and the body limit, took 5.5 GB (a server under a 1 GiB memory limit was OOM-killed, every
request in flight lost); an ordinary 10-minute 48 kHz stereo MP3 768 MB. Now both peak at 73 MB of arrays: 2x the
36 MB mono output at 16 kHz (the blocks' list and its concatenation; the level check's copy is as large). The
waveform is the whole read's: the mix is per sample (`downmix_to_mono`), soxr's streamed filter gives
`soxr.resample`'s samples (`StreamResampler`), and the channels' energies are summed block by block (`MixMeter`)
to the whole clip's within float64 rounding. A clip of more than one block is written into one array of the length
its header declares (`_Waveform`): the blocks' list and its concatenation held 2x the waveform (460 MB of RSS for
an hour of 8 kHz audio, 230 MB at 16 kHz), the read now 1x and a block (the level check's copy is still 1x more).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hfspeech.data.samples import UNDECLARED_FRAMES, MixMeter, StreamResampler, downmix_to_mono, rate_problem

# Samples (of all channels) per block: 4 MB of float32 whatever the channel count (Ogg Vorbis allows 255): a
# 16 kHz mono clip of 65 s, a 48 kHz stereo one of 11 s is one block.
BLOCK_SAMPLES = 1 << 20


def read_mono(opened, frames: int, sampling_rate: int, name: str, rates: Optional[list] = None) -> Optional[np.ndarray]:
    """The first `frames` frames of `opened` (a `soundfile.SoundFile`), or up to its end, as mono float32 at
    `sampling_rate`: what `soundfile.read` of them, `downmix_to_mono` and `soxr.resample` give. None when libsndfile
    finds no samples or fails part-way (ffmpeg then decodes the clip or names the problem), or for a stream whose
    header declares no length (`UNDECLARED_FRAMES`: left to ffmpeg). An `AudioFileError` naming `name` for a rate
    no audio has (`rate_problem`, checked after the read as before, without resampling to it: 16,000 samples
    "at 1 Hz" are 256 million at 16 kHz) or channels that cancel out in the mix (`MixMeter`). `rates`: given, the
    file's rate is appended to it once the samples are read (`audio.decode_audio`'s `source_rates`)."""
    from hfspeech.data.audio import AudioFileError  # audio.py imports this module

    if frames >= UNDECLARED_FRAMES:
        return None
    rate = opened.samplerate
    problem = rate_problem(rate)
    resample = StreamResampler(rate, rate if problem else sampling_rate)
    block_frames = max(1, BLOCK_SAMPLES // max(1, opened.channels))
    meter = MixMeter()
    waveform = _Waveform(_longest_output(frames, resample) if frames > block_frames else None)
    try:
        for block in _blocks(opened, frames, block_frames):
            mono = downmix_to_mono(block)
            meter.push(block, mono)
            waveform.add(resample(mono))  # at the file's rate where it is the model's or refused
    except _Damaged:
        return None
    if not meter.frames:
        return None
    if problem or (problem := meter.problem()):
        raise AudioFileError(name, problem)
    if resample.stream is not None:
        waveform.add(resample(np.zeros(0, np.float32), last=True))
    if rates is not None:
        rates.append(rate)
    return waveform.samples()


def _longest_output(frames: int, resample: StreamResampler) -> int:
    """The most samples `frames` frames resample to: soxr's whole output is `frames * out / in` rounded (measured:
    never past its ceiling, for 8 to 96 kHz in and clips of 1 to 3 million frames), so its ceiling."""
    if resample.stream is None:
        return frames
    return -(-frames * resample.output_rate // resample.input_rate)


class _Waveform:
    """The read's mono samples, piece by piece: for a clip of several blocks (`longest` given) written into one
    float32 array as they come, so that the read never holds both a list of pieces and their concatenation. Pieces
    past its end (soxr past its ceiling: never seen) go on in a list, joined at the end as before; a file giving less
    than its header declared (cut short) is copied out of the array only when the unused end is more than a block."""

    def __init__(self, longest: Optional[int]):
        self.array, self.filled, self.pieces = None, 0, []
        try:  # a header may declare more than memory holds (FLAC: 2^36 samples); the list reads what is there
            self.array = None if longest is None else np.empty(longest, np.float32)
        except (MemoryError, ValueError):
            pass

    def add(self, piece: np.ndarray) -> None:
        end = self.filled + len(piece)
        if self.array is not None and not self.pieces and end <= len(self.array):
            self.array[self.filled:end] = piece
            self.filled = end
        else:
            self.pieces.append(piece)

    def samples(self) -> np.ndarray:
        if self.array is None:
            return self.pieces[0] if len(self.pieces) == 1 else np.concatenate(self.pieces)
        filled = self.array[:self.filled]
        if self.pieces:
            return np.concatenate([filled, *self.pieces])
        return filled if len(self.array) - self.filled <= BLOCK_SAMPLES else filled.copy()


class _Damaged(Exception):
    """libsndfile failed part-way through a damaged stream (or could not seek in it)."""


def _blocks(opened, frames: int, block_frames: int):
    """`[n, channels]` float32 blocks of `block_frames` of `opened` from frame 0 (as `soundfile.read` reads),
    `frames` in all or up to the end of its samples (`sndfile_blocks`); `_Damaged` where libsndfile fails."""
    try:
        opened.seek(0)
        yield from sndfile_blocks(opened, frames, block_frames)
    except Exception as error:
        raise _Damaged() from error


def sndfile_blocks(opened, frames: int, block_frames: int):
    """`[n, channels]` float32 blocks of up to `block_frames` of an open `soundfile.SoundFile`, from where it stands,
    `frames` in all (or to its end), each one `SoundFile.read` that does not seek: read as it is, a seekable file is
    asked where it stands and sought back there after each call (soundfile's `_cdata_io`), and libsndfile's MP3
    seek restarts mpg123 without its bit reservoir: ~5,400 frames after each block of a 44.1 or 48 kHz MP3 came out
    as zeros or wrong (0.14 of full scale; `iter_audio_chunks` lost ~0.1 s every 10 s). Read so, the blocks are the
    whole read's samples, bit for bit, in every format. libsndfile's error where it fails part-way."""
    opened.seekable = lambda: False  # this open file only (`SoundFile.read` asks it before its tell and seek)
    while frames > 0:
        block = opened.read(min(block_frames, frames), dtype="float32", always_2d=True)
        if not len(block):
            return
        frames -= len(block)
        yield block
