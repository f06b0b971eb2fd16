"""The espeak-ng keyword generator: layout, audio format, content, determinism, idempotency."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from hfspeech.cli.demo import demo_data as main
from hfspeech.errors import UsageError
from hfspeech.synthetic.signals import generate_noise_files
from hfspeech.synthetic.spoken import DEFAULT_KEYWORDS, generate_keyword_dataset, generate_language_dataset

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

KEYWORDS = ("yes", "no", "stop")
CLIPS = 4


def make(path, **kwargs):
    kwargs = {"keywords": KEYWORDS, "clips_per_keyword": CLIPS, "progress": False, **kwargs}
    return generate_keyword_dataset(path, **kwargs)


def digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.glob("*/*.wav"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make(tmp_path_factory.mktemp("kws") / "data")


def test_default_keywords_are_eight_distinct_words():
    assert len(set(DEFAULT_KEYWORDS)) == 8


def test_layout_count_and_info(dataset):
    assert sorted(p.name for p in dataset.iterdir() if p.is_dir()) == sorted(KEYWORDS)
    for kw in KEYWORDS:
        names = sorted(p.name for p in (dataset / kw).iterdir())
        assert names == [f"{kw}_{i:04d}.wav" for i in range(CLIPS)]
    info = json.loads((dataset / "dataset_info.json").read_text())
    assert info["keywords"] == list(KEYWORDS)
    assert info["counts"] == {kw: CLIPS for kw in KEYWORDS} and info["num_clips"] == 12
    assert info["seed"] == 0 and info["sampling_rate"] == 16000
    assert "espeak-ng" in (dataset / "README.md").read_text()


def test_wav_format(dataset):
    for path in dataset.glob("*/*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)
        assert info.subtype == "PCM_16"


def test_clips_hold_distinct_speech(dataset):
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(dataset.glob("*/*.wav"))]
    for clip in clips:
        assert np.abs(clip).max() > 0.03
        # speech stands out from the noise floor: loudest 50 ms frame well above the quietest
        frames = (clip[: len(clip) // 800 * 800].reshape(-1, 800) ** 2).mean(axis=1)
        assert frames.max() > 3 * frames.min()
    for i in range(len(clips)):
        for j in range(i + 1, len(clips)):
            assert not np.allclose(clips[i], clips[j], atol=1e-3)


def test_other_rate_and_length(tmp_path):
    root = make(tmp_path, keywords=("go",), clips_per_keyword=2, sampling_rate=8000,
                clip_seconds=0.5, noise_snr_db=None)
    for path in root.glob("go/*.wav"):
        assert (sf.info(path).samplerate, sf.info(path).frames) == (8000, 4000)


def test_same_seed_same_bytes_other_seed_other_bytes(dataset, tmp_path):
    assert digests(make(tmp_path / "again")) == digests(dataset)
    other = digests(make(tmp_path / "other", seed=1))
    assert other.keys() == digests(dataset).keys()
    assert all(other[k] != v for k, v in digests(dataset).items())


def test_idempotent_and_regenerates_on_change(tmp_path):
    root = make(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    make(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes

    (root / "no" / "no_0002.wav").unlink()  # an incomplete folder is regenerated
    make(tmp_path)
    assert (root / "no" / "no_0002.wav").exists()

    make(tmp_path, clips_per_keyword=2)  # new parameters: stale clips are removed
    assert len(list(root.glob("*/*.wav"))) == 6
    assert json.loads((root / "dataset_info.json").read_text())["clips_per_keyword"] == 2


def test_missing_espeak_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    message = "espeak-ng not found: install it with `apt-get install espeak-ng`"
    with pytest.raises(RuntimeError, match=message):
        make(tmp_path / "out")


def test_bad_keywords_are_rejected(tmp_path):
    for keywords in ([], ["yes", "yes"], ["../up"], ["-v"]):
        with pytest.raises(ValueError):
            make(tmp_path, keywords=keywords)


def test_noise_files(tmp_path):
    paths = generate_noise_files(tmp_path, n=5, seconds=0.5, sampling_rate=8000)
    kinds = ["white", "pink", "brown", "blue", "hum"]
    assert [p.name for p in paths] == [f"noise_{i:02d}_{kind}.wav" for i, kind in enumerate(kinds)]
    signals = [sf.read(p)[0] for p in paths]
    assert all(len(s) == 4000 and s.std() > 0.01 for s in signals)
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}) == 5


def test_main_and_audiofolder_loading(tmp_path):
    assert main([str(tmp_path / "d"), "--keywords", "up", "down", "--clips-per-keyword", "2",
                 "--no-progress", "--noise-files", str(tmp_path / "n")]) == 0
    assert len(list((tmp_path / "n").glob("*.wav"))) == 5
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("audiofolder", data_dir=str(tmp_path / "d"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 4 and ds.features["label"].names == ["down", "up"]


def test_other_voices_change_the_speech_and_are_recorded(tmp_path):
    english = make(tmp_path / "en", keywords=("six",), clips_per_keyword=2)
    french = make(tmp_path / "fr", keywords=("six",), clips_per_keyword=2, voices=("fr",))
    assert digests(english) != digests(french)
    assert json.loads((french / "dataset_info.json").read_text())["voices"] == ["fr"]
    assert "voices" not in json.loads((english / "dataset_info.json").read_text())  # older folders still match
    assert "among fr," in (french / "README.md").read_text()
    with pytest.raises(UsageError, match="voices"):
        make(tmp_path / "none", voices=())


@pytest.mark.parametrize("flags, error", [
    (["--keywords", "up", "--clips_per_class", "0"], "must be above 0, got 0"),  # was 60 clips each
    (["--keywords", "up", "--clips_per_class", "1", "--clip_seconds", "0"], "must be above 0, got 0"),  # was 1 s
    (["--kind", "events", "--num_clips", "2", "--clips_per_class", "5"],  # was ignored
     "--clips_per_class applies to --kind keywords or languages, not events"),
    (["--keywords", "up", "--clips_per_class", "1", "--num_clips", "3"], "--num_clips applies to --kind events"),
    (["--kind", "events", "--num_clips", "2", "--seed", "-1"], "--seed: must be 0 to 4294967295, got -1"),  # traceback
])
def test_sizes_and_flags_demo_data_would_not_honour_are_refused(flags, error, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "d"), "--no_progress", *flags])
    assert exit_info.value.code == 2 and error in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_a_voice_espeak_ng_lacks_is_named_before_any_clip_is_written(tmp_path):
    """It failed on a worker thread with a traceback, after the other languages' clips were written."""
    with pytest.raises(UsageError, match="'xx-nope': espeak-ng has no such voice"):
        generate_language_dataset(tmp_path / "d", languages=("en", "xx-nope"), clips_per_language=1, progress=False)
    assert not list(tmp_path.rglob("*.wav"))


@pytest.mark.parametrize("where", ["output", "noise"])
def test_a_file_where_a_folder_goes_is_refused(where, tmp_path, capsys):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")  # both were tracebacks (NotADirectoryError / FileExistsError)
    target = [str(mine)] if where == "output" else [str(tmp_path / "d"), "--noise_files", str(mine)]
    with pytest.raises(SystemExit) as exit_info:
        main([*target, "--kind", "events", "--num_clips", "2"])
    assert exit_info.value.code == 2 and f"{mine}: is a file, not a folder" in capsys.readouterr().err
    assert mine.read_text() == "mine"


def test_the_demo_refuses_zero_clips_per_keyword(tmp_path, capsys):
    from hfspeech.cli import main as cli

    with pytest.raises(SystemExit) as exit_info:  # was a data set of no clips, failing later in training
        cli(["demo", "--clips_per_keyword", "0", "--output_dir", str(tmp_path / "demo")])
    assert exit_info.value.code == 2 and "--clips_per_keyword" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
