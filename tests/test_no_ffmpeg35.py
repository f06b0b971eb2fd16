"""A machine without FFmpeg's shared libraries (or libsndfile, or a working espeak-ng): each says so in one line
(system-package audit, session 35).

torchcodec loads FFmpeg's libraries when `torchcodec.decoders` is first imported; without them the import raises
its "Could not load libtorchcodec. Likely causes: ..." RuntimeError. That was taken for the file's fault: `train
--skip_bad_files` dropped every M4A as "corrupt" (a whole speaker, exit code 0), `predict` printed a traceback, the
server answered 400 `undecodable_audio`, and `train --streaming` needed FFmpeg even for WAV. Here a fake
`torchcodec` package that raises torchcodec's own error on import stands in for the missing libraries, in a
subprocess (`PYTHONPATH`); the M4A it is asked to decode is a real one, written beforehand by the real torchcodec.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import TINY_CNN, save_random_baseline, synth_clip, write_tone_folder

CNN = {"conv_channels": [4, 8], "n_mels": 16}
TORCHCODEC_LOAD_FAILURE = ("Could not load libtorchcodec. Likely causes:\n  1. FFmpeg is not properly installed in "
                           "your environment. We support\n     versions 4, 5, 6, 7, and 8 ...")
NAMES_FFMPEG = "decoding it needs FFmpeg's shared libraries (FFmpeg 4 to 8), which torchcodec could not load: install"


def ffmpeg_only_file(path: Path, seconds: float = 0.5) -> Path:
    """A real M4A (AAC), which only FFmpeg decodes: by torchcodec's encoder, else the ffmpeg program; skipped on a
    machine with neither."""
    samples = synth_clip("low", np.random.default_rng(0), 16000, seconds).astype(np.float32)
    try:
        import torch
        from torchcodec.encoders import AudioEncoder

        encoder = AudioEncoder(torch.from_numpy(samples[None, :]), sample_rate=16000)
        path.write_bytes(encoder.to_tensor(format="mp4").numpy().tobytes())
        return path
    except Exception:  # noqa: BLE001 -- no FFmpeg here: try the program
        if shutil.which("ffmpeg") is None:
            pytest.skip("cannot write an M4A: neither torchcodec's encoder nor the ffmpeg program works here")
    wav = path.with_suffix(".wav")
    sf.write(wav, samples, 16000)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", wav, path], check=True)
    wav.unlink()
    return path


def run_faked(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    """`code` run in a fresh Python whose `torchcodec` fails to load as it does without FFmpeg's libraries (and
    whatever else a test put into `tmp_path / "fake"`)."""
    fake = tmp_path / "fake"
    (fake / "torchcodec").mkdir(parents=True, exist_ok=True)
    (fake / "torchcodec" / "__init__.py").write_text(f"raise RuntimeError({TORCHCODEC_LOAD_FAILURE!r})\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


def hfspeech_faked(tmp_path: Path, argv: list) -> subprocess.CompletedProcess:
    return run_faked(tmp_path, f"""
        import sys
        from hfspeech.cli import main
        sys.exit(main({[str(arg) for arg in argv]!r}))""")


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one `error:` line a command ended with (exit code 2), after its log lines, without a traceback."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert result.returncode == 2 and errors == lines[-1:] and "Traceback" not in result.stderr, \
        (result.returncode, result.stderr[-3000:])
    return errors[0]


@pytest.mark.parametrize("skip_bad_files", [False, True])
def test_training_on_a_file_only_ffmpeg_decodes_names_the_missing_ffmpeg_and_skips_nothing(tmp_path, skip_bad_files):
    """Was: "corrupt or unsupported format: Could not load libtorchcodec" with the --skip_bad_files hint, and
    with it every such clip skipped, the run trained on the rest (exit code 0)."""
    rng = np.random.default_rng(0)
    for label in ("low", "high"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(3):
            sf.write(tmp_path / "data" / label / f"{i}.wav", synth_clip(label, rng, 16000), 16000)
    taken = ffmpeg_only_file(tmp_path / "data" / "low" / "taken_on_a_phone.m4a")
    result = hfspeech_faked(tmp_path, [
        "train", "--data_dir", tmp_path / "data", "--output_dir", tmp_path / "run", "--model_type", "cnn",
        "--config_overrides", '{"conv_channels": [4, 8], "n_mels": 16}', "--num_train_epochs", "1",
        "--report_to", "none", *(["--skip_bad_files"] if skip_bad_files else [])])
    line = error_line(result)
    assert line.startswith(f"error: {taken}: {NAMES_FFMPEG} FFmpeg (apt-get install ffmpeg"), line
    assert "corrupt" not in line and "--skip_bad_files" not in line
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_predict_on_a_file_only_ffmpeg_decodes_is_the_same_line_not_a_traceback(tmp_path):
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["low", "high"], 0.5, **CNN)
    taken = ffmpeg_only_file(tmp_path / "taken.m4a")
    line = error_line(hfspeech_faked(tmp_path, ["predict", model, taken]))
    assert line.startswith(f"error: {taken}: {NAMES_FFMPEG}"), line
    assert "WAV, FLAC, Ogg (Vorbis, Opus) and MP3 with a Xing/VBRI length header decode without it" in line


# The stream's and the server's checks run in one faked Python, the stream's first (its WAV must not need torchcodec;
# the server warns once per process), each part's stdout and stderr after a line that names it.
STREAM_CODE = """
from datasets import Audio, Features, IterableDataset, Value
from hfspeech.data.audio import decode_audio
from hfspeech.training.streaming import TrainingStream

def rows():
    yield {{"audio": {{"path": {clip!r}, "bytes": None}}, "label": 0}}

stream = IterableDataset.from_generator(rows, features=Features({{"audio": Audio(decode=False),
                                                                   "label": Value("int64")}}))
for example in TrainingStream(stream):
    print("decoded", decode_audio(example["audio"], 16000).size, "label", example["label"])
"""
SERVER_CODE = """
import logging
logging.basicConfig(format="LOG %(levelname)s %(message)s")
from hfspeech.serve.errors import ApiError
from hfspeech.serve.upload_audio import decode_upload
for _ in range(2):
    try:
        decode_upload({body!r}, 16000, 10.0)
    except ApiError as error:
        print(error.status, error.kind, error.message)
"""
BOTH_PARTS = """
import sys, traceback
failed = []
for part, code in {parts!r}:
    print(f"=== part: {{part}} ===", flush=True)
    print(f"=== part: {{part}} ===", file=sys.stderr, flush=True)
    try:
        exec(compile(code, part, "exec"), {{"__name__": "__main__"}})
    except BaseException:
        traceback.print_exc()
        failed.append(part)
sys.exit(1 if "stream" in failed else 0)
"""


def by_part(text: str) -> dict:
    pieces = re.split(r"^=== part: (\w+) ===\n", text, flags=re.MULTILINE)
    return dict(zip(pieces[1::2], pieces[2::2]))


@pytest.fixture(scope="module")
def stream_and_server(tmp_path_factory) -> dict:
    """{part: (stdout, stderr)} of the faked run, "exit": its code (the stream part's failure only), and "no_m4a":
    why no M4A could be written, where none could (the server's part is then left out)."""
    root = tmp_path_factory.mktemp("stream_and_server")
    clip = root / "a.wav"
    sf.write(clip, synth_clip("low", np.random.default_rng(0), 16000), 16000)
    parts, no_m4a = [("stream", STREAM_CODE.format(clip=str(clip)))], None
    try:
        parts.append(("server", SERVER_CODE.format(body=ffmpeg_only_file(root / "upload.m4a").read_bytes())))
    except pytest.skip.Exception as skipped:  # the stream's check needs no M4A: only the server's is skipped
        no_m4a = str(skipped)
    result = run_faked(root, BOTH_PARTS.format(parts=parts))
    stdout, stderr = by_part(result.stdout), by_part(result.stderr)
    return {part: (stdout.get(part, ""), stderr.get(part, "")) for part, _ in parts} | \
        {"exit": result.returncode, "no_m4a": no_m4a, "whole": result.stdout + result.stderr[-3000:]}


def test_the_server_answers_an_upload_only_ffmpeg_decodes_with_its_own_500_and_warns_once(stream_and_server):
    """Was 400 `undecodable_audio`, blaming the client (the web page's WebM recordings, every one), while /health
    said ok and the log said nothing."""
    if stream_and_server["no_m4a"]:
        pytest.skip(stream_and_server["no_m4a"])
    stdout, stderr = stream_and_server["server"]
    answers = stdout.strip().splitlines()
    assert len(answers) == 2 and all(answer.startswith("500 ffmpeg_unavailable upload: this server cannot decode "
                                                        "this format: it needs FFmpeg") for answer in answers), \
        stdout + stderr[-3000:]
    warnings = [line for line in stderr.splitlines() if line.startswith("LOG WARNING")]
    assert len(warnings) == 1 and "install FFmpeg" in warnings[0], stderr[-3000:]


def test_the_training_stream_of_wav_files_needs_no_ffmpeg(stream_and_server):
    """datasets encodes each row of a typed stream, and `Audio.encode_example` imports torchcodec's encoder: `train
    --streaming` on an all-WAV folder stopped with torchcodec's traceback on a machine without FFmpeg."""
    stdout, _ = stream_and_server["stream"]
    assert stream_and_server["exit"] == 0 and stdout.split() == ["decoded", "8000", "label", "0"], \
        stream_and_server["whole"]


def test_a_streamed_hub_style_dataset_of_wav_clips_trains_without_ffmpeg(tmp_path):
    """`--dataset_name DIR --streaming` writes its held-out clips to Arrow (`hub_stream._written`), which encoded each
    row through `Audio.encode_example` and so needed FFmpeg for WAV clips (review R2)."""
    from datasets import Audio, ClassLabel, Dataset, Features

    folder = write_tone_folder(tmp_path / "tones", clips_per_class=6, rates=(16000,))
    paths = sorted(folder.rglob("*.wav"))
    labels = [path.parent.name for path in paths]
    rows = {"audio": [{"bytes": path.read_bytes(), "path": path.name} for path in paths], "label": labels}
    features = Features({"audio": Audio(), "label": ClassLabel(names=sorted(set(labels)))})
    (tmp_path / "hub" / "data").mkdir(parents=True)
    Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "hub" / "data" / "train-0-of-1.parquet"))
    result = hfspeech_faked(tmp_path, [
        "train", "--dataset_name", tmp_path / "hub", "--streaming", "--output_dir", tmp_path / "run", "--model_type",
        "cnn", "--config_overrides", TINY_CNN, "--max_steps", "2", "--max_eval_samples", "4", "--report_to", "none"])
    assert result.returncode == 0, result.stderr[-3000:]

def test_train_without_libsndfile_names_libsndfile1_in_one_line(tmp_path):
    """Where soundfile's wheel bundles no libsndfile and the system has none, importing soundfile raises cffi's
    `OSError: cannot load library 'libsndfile.so'` (here a fake soundfile raises it): was a traceback."""
    clip = tmp_path / "data" / "low" / "a.wav"
    clip.parent.mkdir(parents=True)
    sf.write(clip, synth_clip("low", np.random.default_rng(0), 16000), 16000)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "soundfile.py").write_text(
        "raise OSError(\"cannot load library 'libsndfile.so': libsndfile.so: cannot open shared object file: "
        "No such file or directory\")\n")
    line = error_line(hfspeech_faked(tmp_path, ["train", "--data_dir", tmp_path / "data", "--output_dir",
                                                tmp_path / "run", "--model_type", "cnn"]))
    assert line == ("error: hfspeech train needs libsndfile, which soundfile could not load: install libsndfile1 "
                    "(apt-get install libsndfile1)"), line


def test_an_espeak_ng_without_its_data_says_so_not_that_a_voice_is_missing(tmp_path, monkeypatch):
    """Was "'en-gb': espeak-ng has no such voice" for a voice the user never chose, espeak-ng's own words dropped."""
    from hfspeech.synthetic.espeak import MissingToolError, check_voices, require_espeak

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    exe = require_espeak()
    monkeypatch.setenv("ESPEAK_DATA_PATH", str(tmp_path))  # a folder without espeak-ng's data: as if it were lost
    with pytest.raises(MissingToolError) as broken:
        check_voices(exe, ["en-gb"])
    assert "phontab" in str(broken.value) and "reinstall it" in str(broken.value), broken.value
    monkeypatch.delenv("ESPEAK_DATA_PATH")
    with pytest.raises(Exception, match="'xx-nope': espeak-ng has no such voice"):
        check_voices(exe, ["xx-nope"])
