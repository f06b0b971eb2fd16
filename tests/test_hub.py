"""Publishing: staging, the model card, loading the staged repo without hfspeech, pushing, safe loading."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from huggingface_hub import ModelCard
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline

from conftest import synth_clip
from hfspeech.cli import main as cli
from hfspeech.hub import StageError, push, stage_run
from hfspeech.inference.classifier import AudioClassifier
from hfspeech.models.folder_checks import NotAModelError, check_model_folder
from hfspeech.models import BASELINE_MODELS

SECRET = "hf_FAKEsecretTOKEN0123456789abcdef"

# Runs with -I -S: no site, so the venv's .pth files (hfspeech's editable finder among them) are never
# processed; site-packages is added as a plain path. The script proves hfspeech is unreachable first.
WITHOUT_HFSPEECH = """
import sys
sys.path.append({site!r})
try:
    import hfspeech
except ModuleNotFoundError:
    pass
else:
    sys.exit("hfspeech is importable: the test would prove nothing")
"""
STAGED_REPO_USE = """
import json
import numpy as np, torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline
repo, clips = {repo!r}, {clips!r}
model = AutoModelForAudioClassification.from_pretrained(repo, trust_remote_code=True).eval()
extractor = AutoFeatureExtractor.from_pretrained(repo, trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
waves = [np.load(c.replace(".wav", ".npy")) for c in clips]
with torch.no_grad():
    logits = model(**extractor(waves, sampling_rate=16000, padding=True, return_tensors="pt")).logits
labels = [pipeline("audio-classification", model=repo, trust_remote_code=True)(c, top_k=1)[0]["label"] for c in clips]
print("RESULT" + json.dumps({{"logits": logits.tolist(), "labels": labels}}))
exec({snippet!r})
"""


def run_python_without_hfspeech(script: str, tmp_path: Path) -> str:
    """`script`'s stdout, run by this Python with transformers and torch importable but not hfspeech, offline."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules")}
    prelude = WITHOUT_HFSPEECH.format(site=sysconfig.get_paths()["purelib"])
    done = subprocess.run([sys.executable, "-I", "-S", "-c", prelude + script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def write_clips(folder: Path) -> list[str]:
    rng = np.random.default_rng(7)
    folder.mkdir()
    clips = []
    for i, kind in enumerate(["low", "high", "noise"]):
        wave = synth_clip(kind, rng, 16000, seconds=0.3 + 0.2 * i)  # different lengths: a padded batch
        sf.write(folder / f"{kind}.wav", wave, 16000, subtype="FLOAT")
        np.save(folder / f"{kind}.npy", wave)
        clips.append(str(folder / f"{kind}.wav"))
    return clips


def run_without_hfspeech(repo: Path, clips: list[str], snippet: str, tmp_path: Path) -> tuple[dict, str]:
    stdout = run_python_without_hfspeech(STAGED_REPO_USE.format(repo=str(repo), clips=clips, snippet=snippet), tmp_path)
    result = next(line for line in stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(result[len("RESULT"):]), stdout


def usage_snippet(card_text: str, repo_id: str, repo: Path, clip: str) -> str:
    snippet = re.search(r"```python\n(.*?)```", card_text, re.S).group(1)
    assert f'model="{repo_id}"' in snippet
    return snippet.replace(repo_id, str(repo)).replace("clip.wav", clip)


@pytest.fixture(scope="module")
def untrained_lstm(tmp_path_factory) -> Path:
    spec = BASELINE_MODELS["lstm"]
    folder = tmp_path_factory.mktemp("lstm") / "model"
    config = spec.config_class(lstm_hidden_size=8, n_mfcc=8, num_labels=3,
                               id2label={0: "high", 1: "low", 2: "noise"}, label2id={"high": 0, "low": 1, "noise": 2})
    torch.manual_seed(0)
    spec.model_class(config).save_pretrained(folder)
    spec.feature_extractor_class().save_pretrained(folder)
    return folder


def stage_events_with_thresholds(run: Path, repo: Path, clip: str) -> None:
    """Stage the multi-label run with thresholds just under the even labels' sigmoid scores on `clip` and just
    over the odd ones': only the even labels are active, which a softmax (scores that share 1) or a single 0.5
    cut would not reproduce."""
    stage_run(run, repo, repo_id="someone/events")
    classifier = AudioClassifier.from_pretrained(str(repo))
    scores = classifier.predict_proba([np.load(clip.replace(".wav", ".npy"))])[0]
    labels = [classifier.id2label[i] for i in range(len(scores))]
    config = json.loads((repo / "config.json").read_text())
    config["label_thresholds"] = {label: float(s) + (-1e-3 if i % 2 == 0 else 1e-3)
                                  for i, (label, s) in enumerate(zip(labels, scores))}
    (repo / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def staged_without_hfspeech(trained_cnn, untrained_lstm, multi_label_run, tmp_path_factory) -> dict[str, tuple]:
    """name -> (staged repo, clips, what the repo computed without hfspeech, that process's stdout) for the CNN
    run, the LSTM model and the multi-label run (on one clip, `stage_events_with_thresholds`), each staged, then run
    in one Python process without hfspeech: one start-up and one import of torch and transformers for the three,
    each repo's output after its own REPO line."""
    root = tmp_path_factory.mktemp("staged")
    clips = write_clips(root / "clips")
    repos = {name: root / f"{name}_repo" for name in ("cnn", "lstm", "events")}  # own names: own transformers_modules
    stage_run(trained_cnn, repos["cnn"], repo_id="someone/tones")
    stage_run(untrained_lstm, repos["lstm"], repo_id="someone/tones")
    stage_events_with_thresholds(multi_label_run[0], repos["events"], clips[0])
    used = {"cnn": clips, "lstm": clips, "events": clips[:1]}
    scripts = []
    for name, repo in repos.items():
        repo_id = "someone/events" if name == "events" else "someone/tones"
        snippet = usage_snippet((repo / "README.md").read_text(), repo_id, repo, clips[0])
        scripts.append(f"print('REPO {name}')\n" + STAGED_REPO_USE.format(repo=str(repo), clips=used[name],
                                                                          snippet=snippet))
    stdout = run_python_without_hfspeech("\n".join(scripts), root)
    outputs = dict(part.split("\n", 1) for part in stdout.split("REPO ")[1:])
    assert sorted(outputs) == sorted(repos), stdout
    results = {name: json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[len("RESULT"):])
               for name, out in outputs.items()}
    return {name: (repos[name], used[name], results[name], outputs[name]) for name in repos}


@pytest.mark.parametrize("family", ["cnn", "lstm"])
def test_staged_repo_loads_without_hfspeech_like_with_it(family, staged_without_hfspeech):
    repo, clips, remote, stdout = staged_without_hfspeech[family]
    config = json.loads((repo / "config.json").read_text())
    assert config["model_type"] == f"hfspeech-{family}" and "AutoModelForAudioClassification" in config["auto_map"]
    assert "AutoFeatureExtractor" in json.loads((repo / "preprocessor_config.json").read_text())["auto_map"]
    assert not any(re.search(r"^\s*(from|import) hfspeech", f.read_text(), re.M) for f in repo.glob("*.py"))

    model = AutoModelForAudioClassification.from_pretrained(repo).eval()  # hfspeech's registered class
    assert type(model).__module__.startswith("hfspeech.models")
    extractor = AutoFeatureExtractor.from_pretrained(repo)
    waves = [np.load(c.replace(".wav", ".npy")) for c in clips]
    with torch.no_grad():
        logits = model(**extractor(waves, sampling_rate=16000, padding=True, return_tensors="pt")).logits
    np.testing.assert_allclose(np.array(remote["logits"]), logits.numpy(), atol=1e-5)
    classifier = pipeline("audio-classification", model=str(repo))
    assert remote["labels"] == [classifier(c, top_k=1)[0]["label"] for c in clips]
    assert f"'label': '{remote['labels'][0]}'" in stdout  # the card's snippet printed its top-3


def test_card_metadata_matches_the_run(trained_cnn, tmp_path):
    stage_run(trained_cnn, tmp_path / "repo", repo_id="someone/tones", eval_dir=None)
    card = ModelCard.load(tmp_path / "repo" / "README.md")
    metrics = json.loads((trained_cnn / "metrics.json").read_text())
    assert card.data.pipeline_tag == "audio-classification" and card.data.library_name == "transformers"
    assert "hfspeech-cnn" in card.data.tags
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"accuracy": metrics["test_accuracy"], "f1": metrics["test_macro_f1"]}
    assert f"train {metrics['num_train_clips']}" in card.text and "test_confusion_matrix.png" in card.text
    assert "| learning_rate | 0.01 |" in card.text  # written as JSON at training time
    for label in metrics["labels"]:
        assert f"| {label} | " in card.text


def test_augmentation_that_was_on_is_recorded_and_carded(trained_cnn, tmp_path):
    from transformers import HfArgumentParser, TrainingArguments

    from hfspeech.training.arguments import DataArguments, ModelArguments

    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run)
    (tmp_path / "my-noise").mkdir()  # --noise_dir is checked when the flags are parsed
    sf.write(tmp_path / "my-noise" / "hum.wav", synth_clip("noise", np.random.default_rng(0), 16000), 16000)
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses([
        "--output_dir", str(run), "--data_dir", "clips", "--gain_db", "3", "--endpoint_trim_db", "20",
        "--speed_factors", "0.9,1.0,1.1", "--noise_dir", str(tmp_path / "my-noise"), "--report_to", "none"])
    push.finish_run(model_args, data_args, training_args, None)
    hyper = json.loads((run / "training_hyperparameters.json").read_text())
    assert {k: hyper.get(k) for k in ("gain_db", "endpoint_trim_db", "speed_factors")} == {
        "gain_db": 3.0, "endpoint_trim_db": 20.0, "speed_factors": "0.9,1.0,1.1"}
    assert "pitch_semitones" not in hyper and str(tmp_path) not in json.dumps(hyper)  # off, and no local paths

    stage_run(run, tmp_path / "repo", repo_id="someone/tones", eval_dir=None)
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "| endpoint_trim_db | 20.0 |" in card and "| gain_db | 3.0 |" in card and "my-noise" not in card


def test_a_run_from_a_checkpoint_is_carded_with_the_checkpoints_model_type(trained_cnn, tmp_path):
    from transformers import HfArgumentParser, TrainingArguments

    from hfspeech.training.arguments import DataArguments, ModelArguments

    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run)
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    arguments = parser.parse_args_into_dataclasses([  # --model_type is ignored when a checkpoint is given
        "--output_dir", str(run), "--data_dir", "clips", "--model_name_or_path", "someone/tone-cnn",
        "--model_type", "lstm", "--report_to", "none"])
    push.finish_run(*arguments, None)
    assert "model_type" not in json.loads((run / "training_hyperparameters.json").read_text())
    stage_run(run, tmp_path / "repo", repo_id="someone/tones", eval_dir=None)
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "| model_type | hfspeech-cnn |" in card and "lstm" not in card


def test_staging_copies_only_what_a_model_repo_needs(trained_cnn, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run)
    (run / "optimizer.pt").write_bytes(b"state")
    (run / "rng_state.pth").write_bytes(b"state")
    assert any(run.glob("checkpoint-*")) and (run / "training_args.bin").exists()
    assert cli(["push", str(run), "--repo-id", "someone/tones", "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = {line.strip() for line in out.splitlines()[1:]}
    assert SECRET not in out and out.startswith("would upload") and {"model.safetensors", "README.md", "metrics.json",
                                                "test_confusion_matrix.png", "modeling_cnn.py"} <= listed
    assert not any(re.search(r"checkpoint|optimizer|rng|training_args\.bin|scheduler", p) for p in listed)
    assert cli(["stage", str(run), str(tmp_path / "repo")]) == 0
    assert SECRET not in capsys.readouterr().out
    staged = [f for f in (tmp_path / "repo").rglob("*") if f.is_file()]
    assert {f.relative_to(tmp_path / "repo").as_posix() for f in staged} == listed
    assert not any(SECRET.encode() in f.read_bytes() for f in staged)


def test_a_symlink_out_of_the_run_is_refused(trained_cnn, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run)
    (tmp_path / "secret.json").write_text("{}")
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(StageError, match="metrics.json: a link"):
        stage_run(run, tmp_path / "repo")


def test_a_token_that_ends_up_in_a_file_stops_staging(trained_cnn, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run)
    (run / "data_report.json").write_text(json.dumps({"note": SECRET}))
    with pytest.raises(StageError, match="contains the Hub token"):
        stage_run(run, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_push_uploads_the_staged_folder(trained_cnn, tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs["private"]))

        def repo_info(self, repo_id, **kwargs):  # asked with --private: an existing public repo stays public
            return type("RepoInfo", (), {"private": True})

        def create_branch(self, repo_id, branch, **kwargs):
            calls.append(("create_branch", branch))

        def upload_folder(self, repo_id, folder_path, revision, **kwargs):
            calls.append(("upload", sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*"))))

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", SECRET)  # a push without any token stops before staging
    paths = push.push_run(trained_cnn, "someone/tones", private=True, revision="v1")
    assert calls[0] == ("token", None)  # huggingface_hub resolves the token itself
    assert calls[1:3] == [("create_repo", "someone/tones", True), ("create_branch", "v1")]
    assert calls[3][0] == "upload" and set(paths) <= set(calls[3][1])


def test_the_recipe_pushes_through_hfspeech_not_trainer(tone_folder, tmp_path, monkeypatch):
    from hfspeech.training.run import main

    pushed = []
    monkeypatch.setattr(push, "push_run", lambda run, repo_id, *args, **kwargs: pushed.append((Path(run), repo_id)) or [])
    monkeypatch.setattr("transformers.Trainer.push_to_hub", lambda *a, **k: pytest.fail("Trainer pushed"))
    monkeypatch.setattr("transformers.Trainer.init_hf_repo", lambda *a, **k: pytest.fail("Trainer made a repo"))
    out = tmp_path / "run"
    main(["--data_dir", str(tone_folder), "--output_dir", str(out), "--model_type", "cnn", "--config_overrides",
          json.dumps({"conv_channels": [4], "n_mels": 16}), "--num_train_epochs", "1", "--max_length_seconds", "0.5",
          "--push_to_hub", "--hub_model_id", "someone/tones", "--hub_token", SECRET])
    assert pushed == [(out, "someone/tones")]
    assert not any(SECRET.encode() in f.read_bytes() for f in out.rglob("*") if f.is_file() and f.suffix == ".json")


def break_folder(folder: Path, problem: str) -> str:
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    if problem == "corrupt config":
        config_file.write_text('{"model_type": ')
        return "corrupt config, not valid JSON"
    if problem == "wrong model_type":
        config_file.write_text(json.dumps({**config, "model_type": "not-a-model"}))
        return "unknown model_type 'not-a-model'"
    if problem == "labels disagree with the head":
        config_file.write_text(json.dumps({**config, "id2label": {"0": "a", "1": "b"}, "label2id": {"a": 0, "b": 1}}))
        return "2 labels in id2label but the classifier in model.safetensors has 3 outputs"
    config_file.write_text(json.dumps({**config, "label2id": {"high": 1, "low": 0, "noise": 2}}))
    return "id2label and label2id disagree"


@pytest.mark.parametrize("problem", ["corrupt config", "wrong model_type", "labels disagree with the head",
                                     "label maps disagree"])
def test_a_folder_that_is_not_a_usable_model_is_named(problem, trained_cnn, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(trained_cnn, folder)
    expected = break_folder(folder, problem)
    with pytest.raises(NotAModelError, match=re.escape(expected)):
        AudioClassifier.from_pretrained(str(folder))
    assert cli(["stage", str(folder), str(tmp_path / "repo")]) == 2
    assert expected in capsys.readouterr().err


def test_a_damaged_run_record_is_named_before_anything_is_staged(trained_cnn, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run)
    (run / "metrics.json").write_text('{"test_accuracy": ')
    assert cli(["stage", str(run), str(tmp_path / "repo")]) == 2
    assert f"{run / 'metrics.json'}: corrupt, not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("problem, error", [
    ("absent", "absent: not found"), ("a file", "clip.wav: not a folder"),
    ("no audio", "no audio: no audio files"),
    ("unknown label", "squeak/a.wav: label 'squeak' (its folder) is not one of the model's labels"),
    ("no export", "--include_onnx, but the run has no onnx/model.onnx")])
def test_an_eval_dir_or_onnx_staging_cannot_use_is_refused_before_writing(problem, error, trained_cnn, tmp_path):
    """They were skipped without a word (a card measuring nothing, no ONNX files), or a label the model does
    not know was measured as accuracy 0.000."""
    folder = {"absent": tmp_path / "absent", "a file": tmp_path / "clip.wav", "no audio": tmp_path / "no audio",
              "unknown label": tmp_path / "strange", "no export": None}[problem]
    (tmp_path / "no audio" / "low").mkdir(parents=True)
    (tmp_path / "strange" / "squeak").mkdir(parents=True)
    for clip in (tmp_path / "clip.wav", tmp_path / "strange" / "squeak" / "a.wav"):
        sf.write(clip, synth_clip("low", np.random.default_rng(0), 16000), 16000)
    with pytest.raises(StageError, match=re.escape(error)):
        stage_run(trained_cnn, tmp_path / "repo", eval_dir=folder, include_onnx=problem == "no export")
    assert not (tmp_path / "repo").exists()


def test_remote_code_is_off_unless_asked(trained_cnn, tmp_path):
    stage_run(trained_cnn, tmp_path / "repo")
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    (tmp_path / "repo" / "config.json").write_text(json.dumps({**config, "model_type": "someone-elses-model"}))
    with pytest.raises(NotAModelError, match="trust_remote_code=True"):
        check_model_folder(str(tmp_path / "repo"))
    check_model_folder(str(tmp_path / "repo"), trust_remote_code=True)


def test_exported_variants_are_staged_with_their_measured_accuracy(trained_cnn, tone_folder, tmp_path):
    from hfspeech.export import export_onnx

    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    export_onnx(run, quantize="int8")
    repo = tmp_path / "repo"
    stage_run(run, repo, repo_id="someone/tones", include_onnx=True, eval_dir=tone_folder)
    assert (repo / "onnx" / "model.onnx").is_file() and (repo / "onnx" / "model_quantized.onnx").is_file()
    text = (repo / "README.md").read_text()
    num_clips = len(list(tone_folder.rglob("*.wav")))
    for variant, file in [("PyTorch fp32", "model.safetensors"), ("ONNX fp32", "onnx/model.onnx"),
                          ("ONNX int8", "onnx/model_quantized.onnx")]:
        row = next(line for line in text.splitlines() if line.startswith(f"| {variant} | `{file}`"))
        assert re.search(rf"\| [01]\.\d{{3}} on {num_clips} clips \| [\d.]+ ms \|$", row), row

    # The card's onnxruntime snippet, with the file read locally instead of downloaded.
    snippet = re.findall(r"```python\n(.*?)```", text, re.S)[1]
    clip = write_clips(tmp_path / "clips")[1]
    snippet = snippet.replace('hf_hub_download("someone/tones", "onnx/model.onnx")', repr(str(repo / "onnx" / "model.onnx")))
    scope: dict = {}
    exec(snippet.replace("clip.wav", clip), scope)
    expected = AudioClassifier.from_pretrained(str(repo)).predict_proba([np.load(clip.replace(".wav", ".npy"))])
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(scope["logits"]), -1).numpy(), expected, atol=1e-4)


def test_a_run_without_test_metrics_is_described_by_what_staging_measured(trained_cnn, tone_folder, tmp_path):
    run = tmp_path / "run"  # e.g. the average of runs (`hfspeech average`): no metrics.json
    shutil.copytree(trained_cnn, run, ignore=shutil.ignore_patterns("checkpoint-*", "metrics.json"))
    stage_run(run, tmp_path / "plain", repo_id="someone/tones", eval_dir=None)
    assert "No test metrics in the run folder: not evaluated." in (tmp_path / "plain" / "README.md").read_text()
    stage_run(run, tmp_path / "measured", repo_id="someone/tones", eval_dir=tone_folder)
    text = (tmp_path / "measured" / "README.md").read_text()
    num_clips = len(list(tone_folder.rglob("*.wav")))
    row = next(line for line in text.splitlines() if line.startswith("| PyTorch fp32 |"))
    accuracy = re.search(rf"\| ([01]\.\d{{3}}) on {num_clips} clips \|", row).group(1)
    assert f"Measured at staging on {num_clips} clips of an evaluation folder: accuracy {accuracy}" in text


def test_unmeasured_variants_say_so(trained_cnn, tmp_path):
    from hfspeech.export import export_onnx

    run = tmp_path / "run"
    shutil.copytree(trained_cnn, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    export_onnx(run)
    stage_run(run, tmp_path / "repo", include_onnx=True)
    row = next(line for line in (tmp_path / "repo" / "README.md").read_text().splitlines() if line.startswith("| ONNX fp32"))
    assert row.endswith("| not measured | not measured |")


# --- multi-label runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny multi-label CNN (generated sound events, one epoch) and its data folder."""
    from conftest import TINY_CNN
    from hfspeech.synthetic.events import generate_event_dataset
    from hfspeech.training.run import main

    data = generate_event_dataset(tmp_path_factory.mktemp("events"), num_clips=40, seed=0)
    run = tmp_path_factory.mktemp("multilabel") / "cnn"
    main(["--train_file", str(data / "labels.csv"), "--problem_type", "multi_label_classification",
          "--output_dir", str(run), "--config_overrides", TINY_CNN, "--num_train_epochs", "1",
          "--per_device_train_batch_size", "16", "--seed", "0", "--save_total_limit", "1"])
    return run, data


def test_multi_label_card_reports_map_thresholds_and_per_class_ap(multi_label_run, tmp_path):
    run, data = multi_label_run
    repo = tmp_path / "repo"
    staged = {p.relative_to(repo).as_posix() for p in stage_run(run, repo, repo_id="someone/events",
                                                                  eval_dir=data / "audio")}
    assert {"test_multilabel_report.json", "test_per_class_ap.png"} <= staged
    assert not any(name.startswith("test_confusion_matrix") for name in staged)
    metrics = json.loads((run / "metrics.json").read_text())
    report = json.loads((run / "test_multilabel_report.json").read_text())["per_class"]
    thresholds = json.loads((run / "config.json").read_text())["label_thresholds"]

    card = ModelCard.load(repo / "README.md")
    results = {(r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}
    assert results == {("map", "macro"): metrics["test_map_macro"], ("map", "micro"): metrics["test_map_micro"],
                       ("roc_auc", "macro"): metrics["test_roc_auc_macro"], ("f1", "micro"): metrics["test_micro_f1"],
                       ("subset_accuracy", None): metrics["test_subset_accuracy"]}
    assert "accuracy" not in card.data.metrics and "map" in card.data.metrics
    text = card.text
    assert not re.search(r"returns one of \d+ labels|No test metrics|confusion matrix", text)
    assert "![per-class average precision and F1](test_per_class_ap.png)" in text
    assert f"Label prevalence in this split is {metrics['test_label_prevalence']:.3f}" in text
    for i, label in enumerate(metrics["labels"]):
        assert f"| {i} | {label} | {thresholds[label]:.3f} |" in text
        ap = report[label]["ap"]
        assert f"| {label} | {ap:.3f} | " in text if ap is not None else f"| {label} | n/a | " in text
    row = next(line for line in text.splitlines() if line.startswith("| PyTorch fp32 |"))
    num_clips = len(list((data / "audio").rglob("*.wav")))
    assert "not measured (multi-label: use `hfspeech evaluate` on a labelled manifest)" in row
    assert re.search(rf"\| [\d.]+ ms on {num_clips} clips \|$", row) and not re.search(r"\d\.\d{3} on", row)
    assert 'function_to_apply="sigmoid"' in text and "active_labels" in text


def test_multi_label_card_snippets_return_the_labels_at_their_thresholds(staged_without_hfspeech, capsys):
    from hfspeech.models.scores import active_labels

    repo, (clip,), _, stdout = staged_without_hfspeech["events"]  # thresholds: stage_events_with_thresholds
    classifier = AudioClassifier.from_pretrained(str(repo))
    expected = [classifier.id2label[i] for i in range(len(classifier.id2label))][::2]
    assert active_labels(classifier.predict_proba([np.load(clip.replace(".wav", ".npy"))])[0], classifier.config) \
        == expected

    text = (repo / "README.md").read_text()
    printed = stdout.strip().splitlines()[-1]  # the card's snippet, run without hfspeech
    assert sorted(eval(printed)) == sorted(expected), printed  # transformers alone, as the card says

    snippet = re.findall(r"```python\n(.*?)```", text, re.S)[1]
    assert "audio_classification_pipeline" in snippet
    capsys.readouterr()
    exec(snippet.replace("someone/events", str(repo)).replace("clip.wav", clip), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert [sorted(eval(line)) for line in lines[-2:]] == [sorted(expected)] * 2


@pytest.mark.parametrize("repo_id", ["", "my model", "user/a/b", "user/model--x"])
def test_push_refuses_a_repo_id_the_hub_would_refuse_even_in_a_dry_run(trained_cnn, repo_id, capsys):
    assert cli(["push", str(trained_cnn), "--repo_id", repo_id, "--dry_run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --repo_id {repo_id!r}: ") and len(err.splitlines()) == 1, err


def test_training_with_a_bad_hub_model_id_stops_before_it_trains(tone_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "--data_dir", str(tone_folder), "--output_dir", str(out), "--model_type", "cnn",
                "--num_train_epochs", "1", "--push_to_hub", "--hub_model_id", "someone/my tones"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --hub_model_id 'someone/my tones': ") and len(err.splitlines()) == 1, err
    assert not (out / "model.safetensors").exists()
