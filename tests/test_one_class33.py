"""A single-label training set of one class is refused: `demo-data --kind events` read with --data_dir trained a
one-class model ('audio') that scored test accuracy 1.0, and nothing said so."""

import numpy as np
import soundfile as sf

from tests.conftest import run_cli_output, synth_clip


def events_like_folder(root):
    """Clips in one subfolder `audio/` and their labels in labels.csv, as `hfspeech demo-data --kind events` writes."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    rows = ["path,label"]
    for i in range(12):
        sf.write(root / "audio" / f"{i}.wav", synth_clip("low", rng, 16000), 16000)
        rows.append(f"audio/{i}.wav,{'dog' if i % 2 else 'dog|car'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_folder_of_one_class_is_refused_naming_the_manifest_beside_it(tmp_path, capsys):
    data = events_like_folder(tmp_path / "events")
    code, _, err = run_cli_output(["train", "--data_dir", str(data), "--output_dir", str(tmp_path / "run"),
                                   "--num_train_epochs", "1"], capsys)
    assert code == 2, err
    assert err.strip().splitlines()[-1] == (
        f"error: {data}: every training clip has one label ('audio'): a classifier needs two classes or more; to "
        f"train on the labels of {data / 'labels.csv'}, give --train_file {data / 'labels.csv'}")
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_model_without_class_names_is_told_where_names_go(tmp_path, capsys):
    """A transformers model saved without id2label has LABEL_0, LABEL_1, ...: evaluate's unknown-label line listed
    them and stopped there (audit EL)."""
    from tests.conftest import TONE_CLASSES, save_random_baseline, write_tone_folder

    data = write_tone_folder(tmp_path / "tones", clips_per_class=1)
    model = save_random_baseline(tmp_path / "cnn", "cnn", [f"LABEL_{i}" for i in range(len(TONE_CLASSES))], 0.5,
                                 conv_channels=[4, 8], n_mels=16)
    code, _, err = run_cli_output(["evaluate", str(model), "--data_dir", str(data), "--output_dir",
                                   str(tmp_path / "evaluation")], capsys)
    assert code == 2 and err.strip().splitlines()[-1].endswith(
        "(the model's classes have no names: set id2label and label2id in its config.json)"), err
