"""Session 36's mends of earlier sessions' leftovers, each shown failing before its change."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from hfspeech.errors import UsageError
from hfspeech.output_folders import held_alone
from tests.conftest import save_random_baseline, synth_clip
from tests.test_no_ffmpeg35 import CNN, error_line, hfspeech_faked


def test_predict_without_libsndfile_names_libsndfile1_not_cffis_words(tmp_path):
    """`predict` turned every OSError into a user error with its own words, so a machine without libsndfile read
    `error: cannot load library 'libsndfile.so': ...` (no package named) where `train` named libsndfile1."""
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["low", "high"], 0.5, **CNN)
    clip = tmp_path / "a.wav"
    sf.write(clip, synth_clip("low", np.random.default_rng(0), 16000), 16000)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "soundfile.py").write_text(
        "raise OSError(\"cannot load library 'libsndfile.so': libsndfile.so: cannot open shared object file: "
        "No such file or directory\")\n")
    line = error_line(hfspeech_faked(tmp_path, ["predict", model, clip]))
    assert line == ("error: hfspeech predict needs libsndfile, which soundfile could not load: install libsndfile1 "
                    "(apt-get install libsndfile1)"), line


def test_a_folder_another_process_holds_is_named_as_every_other_refusal_names_it(tmp_path):
    """held_alone's refusal printed the folder raw: a name with a line break split the one-line error."""
    folder = tmp_path / "take\n1"
    with held_alone(folder, "another run writes there"):
        with pytest.raises(UsageError) as refused:
            with held_alone(folder, "another run writes there", "--output_dir"):
                pass
    assert str(refused.value) == f"--output_dir {repr(str(folder))}: another run writes there"


def test_a_missing_required_flag_says_where_the_flags_are_listed(capsys):
    """evaluate's "required: --model" was the one usage error without the `--help` hint the others end with."""
    from tests.conftest import run_cli_output

    code, _, err = run_cli_output(["evaluate", "--data_dir", "x"], capsys)
    assert code == 2 and err.strip().endswith("--model; `hfspeech evaluate --help` lists them"), err


def test_predict_csv_into_a_closed_pipe_ends_quietly_as_the_other_formats_do(tmp_path):
    """The CSV header is written inside predict's user-error wrapper, which made the reader's going away
    (`| head`, `| csvcut` not installed) `error: [Errno 32] Broken pipe`, exit code 2, not the quiet 141."""
    import subprocess
    import sys

    model = save_random_baseline(tmp_path / "cnn", "cnn", ["low", "high"], 0.5, **CNN)
    clip = tmp_path / "a.wav"
    sf.write(clip, synth_clip("low", np.random.default_rng(0), 16000), 16000)
    run = subprocess.Popen([sys.executable, "-m", "hfspeech", "predict", str(model), str(clip), "--format", "csv"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    run.stdout.close()  # the reader gone before the first row
    err = run.stderr.read().decode()
    assert run.wait(timeout=300) == 141 and "error" not in err, (run.returncode, err)


def test_a_refused_resume_says_how_many_differences_it_left_unnamed(tmp_path, monkeypatch):
    """The error named the first three differences and left the rest out without a word (a changed
    --validation_file was not among them)."""
    from types import SimpleNamespace

    from hfspeech.errors import HfspeechError
    from hfspeech.training import resume_inputs
    from hfspeech.training.arguments import DataArguments

    data = DataArguments(data_dir=str(tmp_path))
    saved = resume_inputs.data_record(None, data, 0, listings=False)
    saved.update(seed=1, validation_split_percentage=20.0, test_split_percentage=5.0, group_column="speaker")
    saved["data"] = {**saved["data"], "label_depth": 1}
    monkeypatch.setattr(resume_inputs, "saved_record", lambda checkpoint: saved)
    with pytest.raises(HfspeechError, match=r"\(group_column .speaker. -> not given; .*; and 2 more\); pass"):
        resume_inputs.check_same_data("run/checkpoint-2", SimpleNamespace(model_name_or_path=None), data,
                                      SimpleNamespace(seed=0, resume_from_checkpoint=None))


def test_a_fifo_listed_as_a_clip_is_named_a_pipe_not_an_empty_file(tmp_path, capsys):
    """`predict` refused a pipe given as an argument, but a FIFO in a manifest or a folder still read "file is empty
    (0 bytes)"; now it is a bad file named for what it is, which --skip_bad_files skips like any other."""
    import os

    from hfspeech.data.audio import AudioFileError, decode_audio
    from tests.conftest import run_cli_output

    fifo = tmp_path / "live.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioFileError, match=r"live\.wav: a pipe, not a file: a file is read more than once"):
        decode_audio({"path": str(fifo), "bytes": None}, 16000)
    model = save_random_baseline(tmp_path / "cnn", "cnn", ["low", "high"], 0.5, **CNN)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path\n{fifo}\n", encoding="utf-8")
    code, _, err = run_cli_output(["predict", str(model), "--manifest", str(manifest)], capsys)
    assert code == 1 and f"error: {fifo}: a pipe, not a file" in err, err
