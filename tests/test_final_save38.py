"""The model a run saves at the end is renamed into its folder file by file, each whole (`training.final_save`).

Audit CC: a reader polling a run's config.json and model.safetensors while `train` saved its model met an empty
config.json (a JSONDecodeError): Trainer wrote each file in place. Here the files a reader would open are checked
at the moment the save has written everything, and after each rename.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import save_random_baseline
from tests.test_mend26_writes import full_disk_past

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

LABELS = ["high", "low", "noise"]
TINY = dict(conv_channels=[4, 8], n_mels=16, apply_spec_augment=False)  # weights 3.1 kB, training_args.bin 5.8 kB
VISIBLE = ("config.json", "model.safetensors", "preprocessor_config.json")


@pytest.fixture()
def earlier_run(tmp_path) -> Path:
    """A run folder holding an earlier model (a resumed run's, or the one `serve` is reading)."""
    return save_random_baseline(tmp_path / "run", "cnn", LABELS, 0.5, **TINY)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in VISIBLE if (folder / name).is_file()}


def hidden_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.name.startswith("."))


def new_trainer(run: Path, saves_seen: list):
    """A Trainer on a model that differs from the earlier one (weights and config.json), whose own save records what
    a reader of the run folder would read at the moment all the new files are written."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, Trainer, TrainingArguments

    from hfspeech.models import register

    class RecordingTrainer(Trainer):
        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            saves_seen.append((output_dir, snapshot(run)))

    register()
    model = AutoModelForAudioClassification.from_pretrained(run)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.config.max_length_seconds = 0.75
    return RecordingTrainer(model=model, args=TrainingArguments(str(run), report_to=[], use_cpu=True),
                            processing_class=AutoFeatureExtractor.from_pretrained(run))


def test_a_reader_of_the_run_folder_sees_the_earlier_files_whole_until_each_new_one_is_renamed_in(
        earlier_run, monkeypatch):
    from hfspeech.models.fingerprint import usual_file_mode
    from hfspeech.training.run import save_model

    earlier, saves_seen, renames = snapshot(earlier_run), [], []
    trainer = new_trainer(earlier_run, saves_seen)
    real_replace = os.replace

    def replace_then_read(source, target, **kwargs):  # the real rename, then what a reader would open
        real_replace(source, target, **kwargs)
        if Path(target).parent != earlier_run:
            return  # the earlier config.json set aside into the scratch folder
        config_file = earlier_run / "config.json"
        config = config_file.read_bytes() if config_file.exists() else None
        if config is not None:
            json.loads(config)  # whole: an empty one failed here
        weights = (earlier_run / "model.safetensors").read_bytes()
        renames.append((Path(target).name, config, weights == earlier["model.safetensors"]))

    monkeypatch.setattr(os, "replace", replace_then_read)
    save_model(trainer)
    monkeypatch.undo()
    [(written_to, seen)] = saves_seen
    assert seen == earlier  # every new file written, none of them yet where a reader looks
    assert Path(written_to).parent == earlier_run and Path(written_to).name.startswith(".final-save-partial-")
    assert [name for name, _, _ in renames][0] == "model.safetensors" and renames[-1][0] == "config.json"
    for name, config, earlier_weights in renames:  # a config.json only beside its own weights (R3: the earlier one
        assert config is None or (config == earlier["config.json"]) == earlier_weights, name  # stood by the new)
    now = snapshot(earlier_run)
    assert now["model.safetensors"] != earlier["model.safetensors"]
    assert json.loads(now["config.json"])["max_length_seconds"] == 0.75
    assert (earlier_run / "training_args.bin").is_file() and hidden_folders(earlier_run) == []
    assert stat.S_IMODE((earlier_run / "model.safetensors").stat().st_mode) == usual_file_mode()


def test_the_scratch_folder_of_a_run_killed_while_saving_goes_at_the_next_save(earlier_run):
    from hfspeech.training.run import save_model

    killed = earlier_run / ".final-save-partial-k1lled00"  # `output_folders.locked_scratch`'s shape; no lock held
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"\0" * 100)
    save_model(new_trainer(earlier_run, []))
    assert hidden_folders(earlier_run) == []


def test_a_final_save_that_fills_the_disk_is_one_line_and_leaves_the_earlier_model_whole(earlier_run):
    """The new weights fit, torch's training_args.bin does not: in place, the earlier weights were gone already."""
    from hfspeech.errors import OutputWriteError
    from hfspeech.training.run import save_model

    earlier = snapshot(earlier_run)
    trainer = new_trainer(earlier_run, [])
    with pytest.raises(OutputWriteError, match=f"^{earlier_run}: cannot write .torch could not write its file.; the "
                                               "model was not saved whole; make room and run the same command again$"):
        with full_disk_past(4000):
            save_model(trainer)
    assert snapshot(earlier_run) == earlier and hidden_folders(earlier_run) == []


def test_a_head_trained_from_cached_features_is_renamed_in_with_its_base(tmp_path, monkeypatch):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, Trainer, TrainingArguments

    from hfspeech.synthetic.tiny import save_tiny_ssl_model
    from hfspeech.training.feature_cache import CachedHeadModel
    from hfspeech.training.run import save_model

    save_tiny_ssl_model(str(tmp_path / "tiny"), "wav2vec2", LABELS)
    run = tmp_path / "run"
    trainer = Trainer(model=CachedHeadModel(AutoModelForAudioClassification.from_pretrained(tmp_path / "tiny")),
                      args=TrainingArguments(str(run), report_to=[], use_cpu=True),
                      processing_class=AutoFeatureExtractor.from_pretrained(tmp_path / "tiny"))
    renamed, real_replace = [], os.replace
    monkeypatch.setattr(os, "replace", lambda source, target, **kw: (renamed.append(Path(target).name),
                                                                     real_replace(source, target, **kw)))
    save_model(trainer)
    monkeypatch.undo()
    assert renamed == ["model.safetensors", "preprocessor_config.json", "training_args.bin", "config.json"]
    loaded = AutoModelForAudioClassification.from_pretrained(run)  # the base too, not the head alone
    assert set(loaded.state_dict()) == set(trainer.model.model.state_dict())
    assert hidden_folders(run) == []


def test_the_files_move_weights_first_and_config_json_last():
    from hfspeech.training.final_save import move_order

    names = ["config.json", "training_args.bin", "model.safetensors.index.json", "preprocessor_config.json",
             "model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors"]
    assert sorted(names, key=move_order) == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
        "preprocessor_config.json", "training_args.bin", "config.json"]


def test_a_save_in_another_weights_format_leaves_no_earlier_weights_beside_it(earlier_run):
    """`train --overwrite_output_dir --save_safetensors False` into a run holding model.safetensors: the earlier
    file stayed beside the new pytorch_model.bin, and transformers loaded it with the new config (R3)."""
    from hfspeech.training.run import save_model

    trainer = new_trainer(earlier_run, [])
    trainer.args.save_safetensors = False
    save_model(trainer)
    assert (earlier_run / "pytorch_model.bin").is_file() and not (earlier_run / "model.safetensors").exists()

