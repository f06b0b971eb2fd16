"""Two users (or two processes, or threads of one server) on the same folders, caches and objects at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_CNN, run_cli_output

HOLD_FOLDER = ("import fcntl, os, sys; handle = os.open(sys.argv[1], os.O_RDONLY); "
               "fcntl.flock(handle, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()")


def train_args(data: Path, output_dir: Path) -> list[str]:
    return ["train", "--data_dir", str(data), "--output_dir", str(output_dir), "--model_type", "cnn",
            "--config_overrides", TINY_CNN, "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
            "--max_length_seconds", "0.5", "--seed", "0", "--disable_tqdm", "True"]


@pytest.fixture
def folder_held_by_another_process(tmp_path):
    """`tmp_path/run` held with `flock` by another process, as a training run in progress holds its folder; the
    folder has a run's record and a checkpoint that run is writing now (no trainer_state.json yet)."""
    folder = tmp_path / "run"
    (folder / "checkpoint-4").mkdir(parents=True)
    (folder / "run_inputs.json").write_text("{}")
    (folder / "checkpoint-4" / "model.safetensors").write_bytes(b"being written")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    yield folder
    holder.stdin.close()
    holder.wait(timeout=20)


def test_a_second_training_run_into_a_folder_in_use_is_refused_in_one_line(tone_folder, folder_held_by_another_process,
                                                                           capsys):
    folder = folder_held_by_another_process
    code, _, err = run_cli_output(train_args(tone_folder, folder), capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: --output_dir {folder}: another training run is writing to this folder now; wait for it to end "
        "(then run the same command again: it resumes), or give another --output_dir")
    # The other run's checkpoint, half written, is not removed as "incomplete" by the refused run
    assert sorted(path.name for path in folder.iterdir()) == ["checkpoint-4", "run_inputs.json"]
    assert (folder / "checkpoint-4" / "model.safetensors").read_bytes() == b"being written"


def test_the_folder_is_free_again_after_a_run_and_an_unused_new_one_is_not_left_behind(tmp_path):
    from hfspeech.output_folders import held_alone

    folder = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with held_alone(folder / "run", "busy"):
            raise RuntimeError("the run failed before writing anything")
    assert not folder.exists()
    with held_alone(folder, "busy", flag="--output_dir"):
        (folder / "config.json").write_text("{}")
        with pytest.raises(Exception, match=rf"^--output_dir {folder}: busy$"):
            with held_alone(folder, "busy", flag="--output_dir"):
                pass
    with held_alone(folder, "busy"):  # released
        pass
    assert (folder / "config.json").exists()


class SavedWhileAnotherProcessSaves:
    """A dataset whose save finishes after another process (here simulated in the same order of events) has put
    its own whole copy of the same data in place: two runs started together on new data."""

    def __init__(self, dataset, folder: Path):
        self.dataset, self.folder = dataset, folder

    def save_to_disk(self, path: str) -> None:
        import os

        self.dataset.save_to_disk(path)
        other = self.folder.with_name(".other-process")
        self.dataset.save_to_disk(str(other))
        os.replace(other, self.folder)
        self.other_state_inode = (self.folder / "state.json").stat().st_ino  # the file its reader opens


def test_a_cache_folder_another_process_saved_meanwhile_is_kept_not_deleted_under_its_reader(tmp_path):
    from datasets import Dataset, load_from_disk

    from hfspeech.data.whole_folders import save_whole

    folder = tmp_path / "cache" / "key"
    folder.parent.mkdir()
    dataset = Dataset.from_dict({"x": list(range(50))})
    saving = SavedWhileAnotherProcessSaves(dataset, folder)
    save_whole(saving, folder)  # before: renamed over it ("Directory not empty"), or deleted it and put ours
    assert (folder / "state.json").stat().st_ino == saving.other_state_inode
    assert load_from_disk(str(folder))["x"] == list(range(50))
    assert sorted(path.name for path in folder.parent.iterdir()) == ["key"]  # no partial or old folder left




def test_a_cache_saved_by_another_run_while_this_one_computed_is_kept(tmp_path):
    """The teacher-logit cache: this run found no cache, computed for a while, and meanwhile another run saved it."""
    import time

    from datasets import Dataset, load_from_disk

    from hfspeech.data.whole_folders import save_whole

    folder = tmp_path / "key"
    looked_at = time.time() - 60  # when this run found no cache, a minute of teacher inference ago
    Dataset.from_dict({"x": [1, 2]}).save_to_disk(str(folder))  # the other run's, whole (renamed in)
    inode = (folder / "state.json").stat().st_ino
    save_whole(Dataset.from_dict({"x": [1, 2]}), folder, looked_at)
    assert (folder / "state.json").stat().st_ino == inode
    assert load_from_disk(str(folder))["x"] == [1, 2]


def four_threads_at_once(work) -> list:
    """`work(i)` for i in 0..3, each in its own thread, all released together (as a web app's workers)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(4)

    def released(i):
        barrier.wait(timeout=20)
        return work(i)
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(released, range(4)))


@pytest.mark.parametrize("backend", ["pytorch", "torchscript", "onnx"])
def test_one_classifier_shared_by_four_threads_scores_as_one_thread_does(trained_cnn, tmp_path, backend, capsys):
    import numpy as np

    from conftest import synth_clip
    from hfspeech.inference.classifier import AudioClassifier
    from hfspeech.inference.streaming import StreamingClassifier

    model = trained_cnn
    if backend != "pytorch":
        code, _, err = run_cli_output(["export", str(trained_cnn), "--format", backend, "--output",
                                       str(tmp_path / backend)], capsys)
        assert code == 0, err
        model = tmp_path / backend
    classifier = AudioClassifier.from_pretrained(str(model), backend=backend, batch_size=4)
    rng = np.random.default_rng(3)
    clips = [synth_clip(kind, rng, 16000, seconds) for kind in ("low", "high", "noise") for seconds in (0.3, 1.7)]
    alone = [classifier.score_waveform(clip).scores for clip in clips]

    def stream(clip):
        streaming = StreamingClassifier(classifier)
        return [window.scores for window in streaming.process(np.array_split(clip, 7))]
    streamed_alone = [stream(clip) for clip in clips]
    for scores in four_threads_at_once(lambda i: [classifier.score_waveform(clip).scores for clip in clips]):
        np.testing.assert_allclose(scores, alone, rtol=0, atol=1e-6)
    for streamed in four_threads_at_once(lambda i: [stream(clip) for clip in clips]):
        for windows, expected in zip(streamed, streamed_alone):
            np.testing.assert_allclose(windows, expected, rtol=0, atol=1e-6)


LOAD_IN_FOUR_THREADS = """
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from hfspeech.inference.classifier import AudioClassifier
barrier = threading.Barrier(4)
def load(i):
    barrier.wait(timeout=60)
    return AudioClassifier.from_pretrained(sys.argv[1], backend="pytorch").config.id2label
with ThreadPoolExecutor(4) as pool:
    print(len(list(pool.map(load, range(4)))))
"""


def test_four_threads_loading_a_model_at_once_in_a_fresh_process_all_get_it(trained_cnn):
    """A web app whose workers load the model on their first request: transformers' lazy imports, raced from
    threads, raised `ImportError: cannot import name 'AutoFeatureExtractor' from 'transformers'`."""
    done = subprocess.run([sys.executable, "-c", LOAD_IN_FOUR_THREADS, str(trained_cnn)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    assert done.stdout.split() == ["4"]


def test_two_pretrained_conversions_into_one_folder_at_once_both_end_with_it_converted(tmp_path):
    """Two `hfspeech pretrained` at once (two CI jobs sharing the cache) wrote into one partial folder: one stopped
    with a traceback, the other could rename a folder still being written. The second now waits for the first."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "hfspeech.cli", "pretrained", "whisper-tiny.en", str(tmp_path / "tiny")]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    assert sorted(os.listdir(tmp_path)) == ["tiny"]  # no partial folder left beside it
    from hfspeech.models.whisper.pretrained import is_converted, source_of

    assert is_converted(tmp_path / "tiny", source_of("whisper-tiny.en"))
