"""Cache keys that went stale or needed a hand bump (session 39): decoded audio is keyed by its files' bytes (a clip
rewritten with its size, mtime and ctime kept, as on a FUSE mount reporting the mtime as the ctime, was served from
the cache) and by the decoder's own code (`DECODED_LAYOUT` was bumped by hand); a distillation killed while saving
its teacher logits has its scratch removed by any later run that uses the cache, not only by one that saves."""

from __future__ import annotations

import compileall
import importlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset, DatasetDict

from conftest import save_random_baseline
from hfspeech.data import decode_retry
from hfspeech.data.prepare import prepare_dataset
from hfspeech.output_folders import locked_scratch
from hfspeech.training import teacher_cache

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

RATE = 8000


def tone(path: Path, hertz: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * np.sin(2 * np.pi * hertz * np.arange(RATE) / RATE), RATE, subtype="PCM_16")
    return path


def split_of(paths: list[Path]) -> Dataset:
    """A split of `paths` whose fingerprint is what its files' stat made it, unchanged whatever is written in them:
    what a file system that keeps the size, mtime and ctime of a rewritten file gives `data.dataset_columns`."""
    split = Dataset.from_dict({"audio": [str(path) for path in paths], "label": [0] * len(paths)})
    split = split.cast_column("audio", Audio(decode=False))
    split._fingerprint = "0123456789abcdef"
    return split


def rewritten_with_times_kept(path: Path, hertz: float) -> None:
    """`cp -p new.wav old.wav` of a clip of the same length: the size and mtime stay as they were."""
    before = os.stat(path)
    tone(path, hertz)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def decoded(paths: list[Path]) -> list[np.ndarray]:
    return [np.asarray(clip) for clip in prepare_dataset(DatasetDict({"train": split_of(paths)}), RATE)[0]["train"]
            ["input_values"]]


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_a_clip_rewritten_with_its_size_and_times_kept_is_decoded_again(tmp_path, datasets_cache):
    paths = [tone(tmp_path / "data" / "a.wav", 440), tone(tmp_path / "data" / "b.wav", 660)]
    first = decoded(paths)
    rewritten_with_times_kept(paths[0], 1234)
    again = decoded(paths)
    now, _ = sf.read(paths[0], dtype="float32")
    np.testing.assert_allclose(again[0], now, atol=1e-4)  # was the 440 Hz tone, read back from the cache
    assert not np.allclose(again[0], first[0], atol=1e-2)
    np.testing.assert_array_equal(again[1], first[1])


def test_the_decoded_key_follows_the_files_bytes_not_only_the_split(tmp_path):
    paths = [tone(tmp_path / "a.wav", 440)]
    features = prepare_features()
    key = decoded_key(paths, features)
    assert decoded_key(paths, features) == key  # nothing changed: a warm cache
    rewritten_with_times_kept(paths[0], 880)
    assert decoded_key(paths, features) != key


def prepare_features():
    from datasets import Features, List, Value

    return Features({"input_values": List(Value("float32")), "label": Value("int64")})


def decoded_key(paths: list[Path], features) -> str:
    return decode_retry.decoded_fingerprint(split_of(paths), [RATE, False, 40.0, True], features)


HELPERS = 'SCALE = {scale}\n\n\ndef gain(rate):\n    """{doc}"""\n    return SCALE * rate  # {comment}\n\n\n' \
          'def unused():\n    return {unused}\n'
MAIN = 'from fakedecoder39.helpers import gain\n\n\ndef _decoder(rate):\n    def decode(example):\n' \
       '        return example * gain(rate)\n    return decode\n'
MAIN_THROUGH_MODULE = 'from fakedecoder39 import helpers\n\n\ndef _decoder(rate):\n    def decode(example):\n' \
                      '        return example * helpers.gain(rate)\n    return decode\n'


@pytest.mark.parametrize("main", [MAIN, MAIN_THROUGH_MODULE])  # `helpers.gain`: the module named, not the function
def test_an_edit_of_the_code_the_decoder_reaches_names_new_caches(tmp_path, monkeypatch, main):
    """An edit of a constant two names below the decoder names new caches; docstrings, comments and code the decoder
    never reaches do not (an upgrade that changed no sample decoded nothing again). `DECODED_LAYOUT`, bumped by hand,
    named the same cache whatever the decoder's code became."""
    package = tmp_path / "code" / "fakedecoder39"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(main)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    for name in [name for name in sys.modules if name.split(".")[0] == "fakedecoder39"]:  # an earlier case's package
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(decode_retry, "DECODER_ROOT", ("fakedecoder39.main", "_decoder"), raising=False)
    paths, features = [tone(tmp_path / "a.wav", 440)], prepare_features()

    def key_with(**helpers) -> str:
        (package / "helpers.py").write_text(HELPERS.format(**{"doc": "Gain.", "comment": "", "unused": 0, **helpers}))
        return decoded_key(paths, features)

    first = key_with(scale=0.5)
    assert key_with(scale=0.5, doc="The gain of a clip.", comment="halved", unused=1) == first
    assert key_with(scale=0.25) != first
    assert key_with(scale=0.5) == first


def test_the_decoders_code_is_the_same_in_every_process_and_seed():
    """Stable across runs of the same code: a key that changed with the process (a set's order, an address, what it
    imported) would decode every run's data again. Read from the files: a function a test swaps in (to count or
    refuse decoding) leaves it as it is."""
    here = decode_retry.decoder_code()
    assert decode_retry.decoder_code() == here
    script = "import hfspeech.data.decode_retry as d; print(d.decoder_code())"  # `data.prepare` not imported
    for seed in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.stdout.strip() == here, done.stderr[-2000:]


def test_a_killed_saves_scratch_is_removed_by_a_run_that_finds_the_logits_cached(tmp_path):
    """A distillation killed while saving, beside another that saved the same logits: every later run found them
    cached and none swept, so the killed one's scratch stayed for good (as did one of a key no run used again)."""
    teacher = save_random_baseline(tmp_path / "teacher", "cnn", ["a", "b"], 0.02, conv_channels=[4], n_mels=16)
    clips = Dataset.from_dict({"input_values": [np.zeros(1600, np.float32)] * 3})
    cache = tmp_path / "logits"
    first = teacher_cache.teacher_logits(str(teacher), clips, 16000, ["a", "b"], cache_dir=str(cache), batch_size=1)
    key = teacher_cache.cache_key(str(teacher), clips, ["a", "b"])
    killed = [cache / f".{key}-partial-abcd1234", cache / f".{'f' * 24}-partial-efgh5678",
              cache / f".{'e' * 24}.partial-999999999"]  # the earlier shape, of a process gone
    for folder in killed:
        (folder / "part").mkdir(parents=True)
    live, handle = locked_scratch(cache / key)  # a save in progress, locked: kept
    try:
        again = teacher_cache.teacher_logits(str(teacher), clips, 16000, ["a", "b"], cache_dir=str(cache),
                                             batch_size=1)
        assert [folder.exists() for folder in killed] == [False, False, False]
        assert live.is_dir()
    finally:
        os.close(handle)
    np.testing.assert_array_equal(again, first)
    assert (cache / key).is_dir()


def test_a_manifests_decoded_file_is_named_by_its_decoded_key(tmp_path, datasets_cache):
    """`hfspeech-prepared` (manifests, data in memory): `datasets.map` reads the file of that name whatever fingerprint
    it is given, so the name holds the decoded key (its files' bytes, the decoder's code): the end-to-end case is
    `test_a_clip_rewritten_with_its_size_and_times_kept_is_decoded_again`, whose split is in memory."""
    from hfspeech.data.cache_users import prepared_file

    split = split_of([tone(tmp_path / "a.wav", 440)])
    assert prepared_file(split, [RATE], key="a") != prepared_file(split, [RATE], key="b")


def fresh_package(monkeypatch, name: str, where: Path) -> None:
    """`where` first on the path and no module of package `name` imported: the next import reads `where`'s."""
    monkeypatch.syspath_prepend(str(where))
    for module in [module for module in sys.modules if module.split(".")[0] == name]:
        monkeypatch.delitem(sys.modules, module)
    importlib.invalidate_caches()


def test_a_zipped_install_follows_the_decoders_code_too(tmp_path, monkeypatch):
    """From a zip on the path, `find_spec(...).origin` names no file to read: the key followed no code at all, and an
    upgrade that changed the decoding read the earlier audio back (reviewer R2)."""
    monkeypatch.setattr(decode_retry, "DECODER_ROOT", ("fakezip39.main", "_decoder"))

    def key_from_zip(scale: float) -> str:
        archive = tmp_path / f"install_{scale}.zip"
        with zipfile.ZipFile(archive, "w") as files:
            files.writestr("fakezip39/__init__.py", "")
            files.writestr("fakezip39/main.py", MAIN_THROUGH_MODULE.replace("fakedecoder39", "fakezip39"))
            files.writestr("fakezip39/helpers.py", HELPERS.format(scale=scale, doc="Gain.", comment="", unused=0))
        fresh_package(monkeypatch, "fakezip39", archive)
        return decode_retry.decoder_code()

    assert key_from_zip(0.5) != key_from_zip(0.25)
    assert key_from_zip(0.5) == key_from_zip(0.5)


def test_an_install_of_compiled_files_only_keys_by_the_compiled_code(tmp_path, monkeypatch):
    monkeypatch.setattr(decode_retry, "DECODER_ROOT", ("fakepyc39.main", "_decoder"))

    def key_compiled(main: str, where: Path) -> str:
        package = where / "fakepyc39"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "main.py").write_text(main.replace("fakedecoder39", "fakepyc39"))
        (package / "helpers.py").write_text(HELPERS.format(scale=0.5, doc="Gain.", comment="", unused=0))
        compileall.compile_dir(str(package), legacy=True, quiet=1)  # main.pyc beside, as `compileall -b` writes
        for source in package.glob("*.py"):
            source.unlink()
        fresh_package(monkeypatch, "fakepyc39", where)
        return decode_retry.decoder_code()

    assert key_compiled(MAIN, tmp_path / "a") != key_compiled(MAIN_THROUGH_MODULE, tmp_path / "b")


def test_training_clips_read_each_file_once_after_the_decoded_key(tmp_path, monkeypatch):
    """The decoded key and `training_clips.json` each read every clip (20,000 one-second clips: 1.4 s a read)."""
    from hfspeech.data import clip_digests

    paths = [tone(tmp_path / f"{hertz}.wav", hertz) for hertz in (300, 400, 500)]
    split, reads, read_bytes = split_of(paths), [], Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: (reads.append(path.name), read_bytes(path))[1])
    key = clip_digests.files_content_key(split)
    digests = clip_digests.clip_digests(split)
    assert sorted(reads) == ["300.wav", "400.wav", "500.wav"] and len(set(digests)) == 3
    rewritten_with_times_kept(paths[0], 600)
    clip_digests.forget_read_files()  # as the next run's `prepare_dataset` does
    assert clip_digests.files_content_key(split) != key and reads.count("300.wav") == 2


def test_the_next_run_in_one_process_reads_a_clip_whose_stat_did_not_change(tmp_path, datasets_cache, monkeypatch):
    """A notebook training twice: on a file system of 1-s times (ext4 with small inodes, HFS+, FAT), or FUSE keeping
    ctime == mtime, a clip rewritten between the runs kept its whole stat, and the digests this process remembered
    served the old samples (reviewer R3). Such a file system's stat is what `os.stat` answers here."""
    path = tone(tmp_path / "data" / "a.wav", 440)
    first, frozen, real_stat = decoded([path])[0], os.stat(path), os.stat
    rewritten_with_times_kept(path, 1234)
    monkeypatch.setattr(os, "stat", lambda name, *args, **kwargs: frozen if str(name) == str(path)
                        else real_stat(name, *args, **kwargs))
    again = decoded([path])[0]
    assert not np.allclose(again, first, atol=1e-2)
