"""The runs of `benchmarks/pretrained.py`: what each one trains (a flag file of `recipes/fsdd/` and extra flags),
on which data (SYNTHETIC, ACCENTS), and the soups averaged from them.

A table, apart from the code that runs it, so a reader sees every run in one place; `benchmarks/pretrained.py`
re-exports these names (other benchmarks import FSDD, SPEAKERS and RECIPES from it).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"
SPEAKERS = ("george", "jackson", "lucas", "nicolas")
RECIPES = ROOT / "recipes" / "fsdd"
SEEDS = (("", []), ("-seed1", ["--seed", "1"]), ("-seed2", ["--seed", "2"]))  # run-name suffix -> seed flags
RUNS = {  # name -> flag file and extra flags
    "cnn": ("cnn.args", []),
    "lstm": ("lstm.args", []),
    "probe-tiny": ("whisper_probe.args", []),
    "probe-base": ("whisper_probe.args", ["--model_name_or_path", "whisper-base"]),
    "probe-tiny-seed1": ("whisper_probe.args", ["--seed", "1"]),
    "probe-tiny-seed2": ("whisper_probe.args", ["--seed", "2"]),
    "finetune-tiny": ("whisper_finetune.args", []),
    "finetune-base": ("whisper_finetune.args", ["--model_name_or_path", "whisper-base", "--learning_rate", "5e-5"]),
    "finetune-tiny-reg": ("whisper_finetune_regularised.args", []),
    "finetune-base-reg": ("whisper_finetune_regularised.args", ["--model_name_or_path", "whisper-base"]),
    # the same probe with the frozen encoder run on every batch: one epoch, for the per-epoch ratio
    "probe-tiny-live": ("whisper_probe.args", ["--cache_frozen_features", "False", "--num_train_epochs", "1"]),
    # LP-FT: fine-tune starting from this fold's linear probe (its trained head), see recipes/fsdd/README.md
    "lpft-tiny": ("whisper_lpft.args", ["--model_name_or_path", "{probe-tiny}"]),
    "lpft-base": ("whisper_lpft.args", ["--model_name_or_path", "{probe-base}"]),
    # accuracy of 1-s cut inputs vs 30-s padding: the same probe on the same 300 training and 200 test clips
    # (a subset: on 2 CPU cores the 30-s encoder takes about a second a clip)
    "probe-tiny-300": ("whisper_probe.args", ["--max_train_samples", "300", "--max_eval_samples", "200"]),
    "probe-tiny-300-30s": ("whisper_probe.args", ["--max_train_samples", "300", "--max_eval_samples", "200",
                                                  "--max_length_seconds", "30"]),
    # trimmed silence (every clip starts at its word), last-layer probe, LP-FT from it without time shifts
    "probe-tiny-trim": ("whisper_probe_trim.args", []),
    "lpft-tiny-trim": ("whisper_lpft_trim.args", ["--model_name_or_path", "{probe-tiny-trim}"]),
    "lpft-tiny-speaker": ("whisper_lpft_speaker.args", ["--model_name_or_path", "{probe-tiny}"]),
    # the three training voices plus espeak-ng digits in many synthetic voices (SYNTHETIC: clips per digit)
    "probe-tiny-espeak": ("whisper_probe.args", []),
    "lpft-tiny-espeak": ("whisper_lpft.args", ["--model_name_or_path", "{probe-tiny-espeak}"]),
    # ... and voices of other languages reading the English digits (ACCENTS: runs whose synthetic voices do)
    "probe-tiny-accents": ("whisper_probe.args", []),
    "lpft-tiny-accents": ("whisper_lpft.args", ["--model_name_or_path", "{probe-tiny-accents}"]),
    # silence trimmed (every clip, real or generated, starts at its word) plus the espeak-ng digits
    "probe-tiny-trim-espeak": ("whisper_probe_trim.args", []),
    "lpft-tiny-trim-espeak": ("whisper_lpft_trim.args", ["--model_name_or_path", "{probe-tiny-trim-espeak}"]),
    # Whisper's decoder scoring each label's words (--score_label_words), all weights trained, three seeds
    "labels-tiny": ("whisper_label_words.args", []),
    "labels-tiny-seed1": ("whisper_label_words.args", ["--seed", "1"]),
    "labels-tiny-seed2": ("whisper_label_words.args", ["--seed", "2"]),
    "labels-base": ("whisper_label_words.args", ["--model_name_or_path", "whisper-base"]),
    # ... with a 5-s window: the clip, then silence (the frozen probe heard nicolas better so; whisper_context.py)
    "labels-tiny-5s": ("whisper_label_words.args", ["--max_length_seconds", "5.0"]),
    # the probe averaging only the clip's frames of a 5-s window (--pool_clip_frames), three seeds
    "probe-tiny-clip5s": ("whisper_probe_clip.args", []),
    "probe-tiny-clip5s-seed1": ("whisper_probe_clip.args", ["--seed", "1"]),
    "probe-tiny-clip5s-seed2": ("whisper_probe_clip.args", ["--seed", "2"]),
    # ... and in the 1-s window (no extra encoder work), three seeds
    "probe-tiny-clip1s": ("whisper_probe.args", ["--pool_clip_frames"]),
    "probe-tiny-clip1s-seed1": ("whisper_probe.args", ["--pool_clip_frames", "--seed", "1"]),
    "probe-tiny-clip1s-seed2": ("whisper_probe.args", ["--pool_clip_frames", "--seed", "2"]),
    "probe-base-espeak": ("whisper_probe.args", ["--model_name_or_path", "whisper-base"]),
    "lpft-base-espeak": ("whisper_lpft.args", ["--model_name_or_path", "{probe-base-espeak}"]),
    # base + espeak-ng digits, the probe and LP-FT averaging only the clip's frames (1-s window), three seeds
    **{f"probe-base-clip1s-espeak{suffix}": ("whisper_probe.args", ["--model_name_or_path", "whisper-base",
                                                                  "--pool_clip_frames", *seed])
       for suffix, seed in SEEDS},
    **{f"lpft-base-clip1s-espeak{suffix}": ("whisper_lpft.args", ["--model_name_or_path",
                                                                 f"{{probe-base-clip1s-espeak{suffix}}}", *seed])
       for suffix, seed in SEEDS},
}
SYNTHETIC = {name: 60 for name in RUNS if "espeak" in name or "accents" in name}  # generated clips per digit
ACCENTS = {"probe-tiny-accents", "lpft-tiny-accents"}
# one model per fold from runs above: their weights averaged (`hfspeech average`), then evaluated
SOUPS = {"labels-tiny-soup": ("labels-tiny", "labels-tiny-seed1", "labels-tiny-seed2"),
         "probe-tiny-soup": ("probe-tiny", "probe-tiny-seed1", "probe-tiny-seed2"),
         "probe-tiny-clip5s-soup": ("probe-tiny-clip5s", "probe-tiny-clip5s-seed1", "probe-tiny-clip5s-seed2"),
         "lpft-base-clip1s-espeak-soup": ("lpft-base-clip1s-espeak", "lpft-base-clip1s-espeak-seed1",
                                          "lpft-base-clip1s-espeak-seed2")}
LANGUAGE_RUNS = {
    "cnn": ("cnn.args", ["--max_length_seconds", "2.0"]),
    "probe-base": ("whisper_probe.args", ["--model_name_or_path", "whisper-base", "--max_length_seconds", "2.0"]),
    "finetune-base": ("whisper_finetune.args", ["--model_name_or_path", "whisper-base", "--max_length_seconds", "2.0",
                                                "--learning_rate", "5e-5", "--num_train_epochs", "5"]),
}
