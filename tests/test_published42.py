"""A staged repo tells the truth about its own model only: not a retrained run's old ONNX export nor an earlier
run's test report left in the folder; the run's own warnings and baseline, which clips the variants were measured on
and where, the Hub base model behind a local checkpoint, Hub metric ids and a license."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from tests.conftest import TONE_CLASSES, run_cli_output, save_random_baseline, write_tone_folder

LABELS = list(TONE_CLASSES)


def random_run(folder: Path, labels=LABELS, **config_values) -> Path:
    return save_random_baseline(folder, "cnn", labels, 0.5, n_mels=16, conv_channels=[4, 8], **config_values)


def write_json(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record), encoding="utf-8")


def test_a_retrained_runs_old_onnx_export_is_refused(tmp_path):
    from hfspeech.export import export_onnx
    from hfspeech.hub import StageError, stage_run

    run = random_run(tmp_path / "run")
    export_onnx(run)
    stage_run(run, tmp_path / "fresh", include_onnx=True)  # its own export: staged
    assert (tmp_path / "fresh" / "onnx" / "model.onnx").is_file()
    random_run(run, ["yes", "no"])  # retrained into the same folder (`--overwrite_output_dir`), other labels
    with pytest.raises(StageError, match=r"onnx was exported from other weights than .*`hfspeech export .*` again"):
        stage_run(run, tmp_path / "repo", include_onnx=True)
    (run / "onnx" / "traced_from.json").unlink()  # an older hfspeech's export: nothing tells which weights
    with pytest.raises(StageError, match="no traced_from.json"):
        stage_run(run, tmp_path / "repo", include_onnx=True)
    (run / "onnx" / "model_quantized.onnx").write_bytes(b"int8")  # its int8 file: the remedy must keep making one
    with pytest.raises(StageError, match=r"`hfspeech export \S+ --quantize int8` again \(with"):
        stage_run(run, tmp_path / "repo", include_onnx=True)
    assert not (tmp_path / "repo").exists()


def test_an_earlier_runs_test_reports_are_not_staged(tmp_path, caplog):
    from hfspeech.hub import stage_run

    run = random_run(tmp_path / "run")
    write_json(run / "test_classification_report.json", {"yes": {"support": 2}, "no": {"support": 3},
                                                          "accuracy": 0.4, "macro avg": {"support": 5}})
    write_json(run / "test_confusion_matrix.json", {"labels": ["yes", "no"], "matrix": [[1, 1], [2, 1]]})
    (run / "test_confusion_matrix.png").write_bytes(b"old figure")
    write_json(run / "test_multilabel_report.json", {"per_class": {label: {} for label in LABELS}})
    stage_run(run, tmp_path / "repo")
    staged = {path.name for path in (tmp_path / "repo").iterdir()}
    assert not staged & {"test_classification_report.json", "test_confusion_matrix.json",
                         "test_confusion_matrix.png", "test_multilabel_report.json"}, staged
    warned = [m for m in caplog.messages if "not staged" in m]
    assert len(warned) == 1 and "test_confusion_matrix.png" in warned[0] and "test_multilabel_report" in warned[0]
    write_json(run / "test_confusion_matrix.json", {"labels": LABELS, "matrix": [[1, 0, 0]] * 3})  # its own
    stage_run(run, tmp_path / "repo")
    assert (tmp_path / "repo" / "test_confusion_matrix.png").is_file()


def test_a_multi_label_run_over_a_single_label_runs_folder_stages_no_single_label_report(tmp_path, caplog):
    from hfspeech.hub import stage_run

    run = random_run(tmp_path / "run", problem_type="multi_label_classification")
    write_json(run / "test_confusion_matrix.json", {"labels": LABELS, "matrix": [[1, 0, 0]] * 3})  # same labels
    stage_run(run, tmp_path / "repo")
    assert not (tmp_path / "repo" / "test_confusion_matrix.json").exists()
    assert any("test_confusion_matrix.json" in m and "not staged" in m for m in caplog.messages)


def test_the_card_gives_the_runs_one_class_warning_and_majority_baseline(tmp_path):
    from hfspeech.hub import stage_run

    run = random_run(tmp_path / "run")
    one_class = "every one of the 5 test clips was predicted 'low'; the majority-class accuracy is 0.400"
    write_json(run / "metrics.json", {"test_accuracy": 0.2, "test_macro_f1": 0.1, "num_test_clips": 5,
                                      "test_majority_class_accuracy": 0.4, "test_one_class_predicted": one_class})
    stage_run(run, tmp_path / "repo")
    results = (tmp_path / "repo" / "README.md").read_text().split("## Results", 1)[1].split("## ", 1)[0]
    assert "accuracy 0.200" in results and "accuracy 0.400 (the majority-class baseline)" in results
    assert "every one of the 5 test clips was predicted 'low'" in results


def test_the_variants_table_names_its_clips_and_machine(tmp_path):
    from hfspeech.hub import stage_run
    from hfspeech.hub.card_variants import machine

    run = random_run(tmp_path / "run")
    held_out = write_tone_folder(tmp_path / "held_out_clips", clips_per_class=2, rates=(16000,))
    stage_run(run, tmp_path / "repo", eval_dir=held_out)
    variants = (tmp_path / "repo" / "README.md").read_text().split("## Exported variants", 1)[1].split("## ", 1)[0]
    assert "| PyTorch fp32 |" in variants and "on 6 clips" in variants
    assert "the 6 clips of the `--eval_dir` folder held\\_out\\_clips" in variants, variants
    assert "not the test split" in variants and machine() in variants and "PyTorch fp32 on cpu" in variants


@pytest.mark.parametrize("recorded", ["absolute", "sibling", "staged card"])
def test_a_fine_tune_of_a_local_run_names_the_hub_model_it_came_from(tmp_path, recorded):
    from hfspeech.hub import stage_run

    probe = random_run(tmp_path / "runC")
    if recorded == "staged card":  # a downloaded or staged repo: its card's metadata says it
        (probe / "README.md").write_text("---\nbase_model: openai/whisper-tiny.en\n---\n# runC\n")
    else:
        write_json(probe / "training_hyperparameters.json", {"model_name_or_path": "whisper-tiny.en"})
    run = random_run(tmp_path / "runD")
    write_json(run / "training_hyperparameters.json",
               {"model_name_or_path": "runC" if recorded == "sibling" else str(probe)})
    stage_run(run, tmp_path / "repo")
    card = ModelCard.load(tmp_path / "repo" / "README.md")
    assert card.data.base_model == "openai/whisper-tiny.en"
    assert str(tmp_path) not in card.content and "itself trained from openai/whisper-tiny.en" in card.content


def test_a_local_checkpoint_whose_records_name_no_hub_model_gives_no_base_model(tmp_path):
    from hfspeech.hub import stage_run

    run = random_run(tmp_path / "runD")
    write_json(run / "training_hyperparameters.json", {"model_name_or_path": str(random_run(tmp_path / "runC"))})
    stage_run(run, tmp_path / "repo")
    assert ModelCard.load(tmp_path / "repo" / "README.md").data.base_model is None


def test_model_index_uses_hub_metric_ids_and_the_license_flag(tmp_path, capsys):
    run = random_run(tmp_path / "run")
    write_json(run / "metrics.json", {"test_accuracy": 0.5, "test_macro_f1": 0.4, "num_test_clips": 4})
    assert run_cli_output(["stage", str(run), str(tmp_path / "repo"), "--license", "apache-2.0"], capsys)[0] == 0
    data = ModelCard.load(tmp_path / "repo" / "README.md").data
    results = {(r.metric_type, r.metric_config): r.metric_value for r in data.eval_results}
    assert results == {("accuracy", None): 0.5, ("f1", "macro"): 0.4} and data.license == "apache-2.0"
    assert run_cli_output(["stage", str(run), str(tmp_path / "repo")], capsys)[0] == 0
    assert ModelCard.load(tmp_path / "repo" / "README.md").data.license is None
    code, _, err = run_cli_output(["stage", str(run), str(tmp_path / "other"), "--license", "MIT License"], capsys)
    assert code == 2 and "--license 'MIT License': not a Hub license id" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "other").exists()
    code, _, err = run_cli_output(["stage", str(run), str(tmp_path / "other"), "--license", "CC-BY-4.0"], capsys)
    assert code == 2 and "(lower case: cc-by-4.0?)" in err
    assert run_cli_output(["stage", str(run), str(tmp_path / "repo"), "--license", "openrail++"], capsys)[0] == 0


LOAD_WITHOUT_HFSPEECH = """
import sys, importlib.abc
class NoHfspeech(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "hfspeech":
            raise ImportError("hfspeech is not installed here")
sys.meta_path.insert(0, NoHfspeech())
import numpy as np
from optimum.onnxruntime import ORTModelForAudioClassification
model = ORTModelForAudioClassification.from_pretrained(sys.argv[1], subfolder="onnx", trust_remote_code=True)
audio = np.random.default_rng(0).standard_normal((1, 8000)).astype(np.float32)
logits = model(input_values=audio, attention_mask=np.ones((1, 8000), np.int64)).logits
print(model.config.id2label[int(logits.argmax())] in sys.argv[2:], tuple(logits.shape))
"""


def test_optimum_loads_a_staged_baselines_onnx_subfolder_without_hfspeech(tmp_path):
    import subprocess
    import sys

    from hfspeech.export import export_onnx
    from hfspeech.hub import stage_run

    run = random_run(tmp_path / "run")
    export_onnx(run)
    stage_run(run, tmp_path / "repo", include_onnx=True)
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_HFSPEECH, str(tmp_path / "repo"), *LABELS],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stdout.split("\n")[-2] == f"True (1, {len(LABELS)})", done.stderr[-2000:]
    stage_run(run, tmp_path / "repo", include_onnx=True)  # an earlier staging, its code in onnx/ too: replaced


def test_a_local_start_deleted_since_is_never_published_as_a_hub_id(tmp_path):
    """Reviewer R3: training records `model_name_or_path` as typed (`runs/probe`); once that folder is gone it
    read as a Hub id, `base_model: runs/probe`. run_inputs.json holds it absolute where it was a local folder."""
    from hfspeech.hub import stage_run

    run = random_run(tmp_path / "runD")
    write_json(run / "training_hyperparameters.json", {"model_name_or_path": "runs/probe"})
    write_json(run / "run_inputs.json", {"model_name_or_path": str(tmp_path / "runs" / "probe"), "data": {}})
    stage_run(run, tmp_path / "repo")
    assert ModelCard.load(tmp_path / "repo" / "README.md").data.base_model is None


def test_push_to_hub_after_training_leaves_a_stale_onnx_out_with_a_warning(tmp_path, caplog):
    """Reviewer R3: `train --push_to_hub` staged onnx/ whenever one was there, so an export of the run's earlier
    weights failed the whole push after the training (which never asked for ONNX); it is left out, said once."""
    from hfspeech.export import export_onnx
    from hfspeech.hub.push import own_onnx

    run = random_run(tmp_path / "run")
    assert not own_onnx(run)  # none
    export_onnx(run)
    assert own_onnx(run)
    random_run(run, ["yes", "no"])  # trained again into the folder
    with caplog.at_level("WARNING", logger="hfspeech.hub"):
        assert not own_onnx(run)
    assert "pushed without onnx/: " in caplog.text and "exported from other weights" in caplog.text


def test_an_eval_dir_named_like_the_user_is_not_named_in_the_card(tmp_path, monkeypatch):
    """Reviewer R3: `--eval_dir ~` published the home folder's name, the user's, in the variants line."""
    from hfspeech.hub.local_paths import public_folder_name

    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    assert public_folder_name(tmp_path / "alice") is None
    assert public_folder_name(tmp_path / "held_out_clips") == "held_out_clips"
