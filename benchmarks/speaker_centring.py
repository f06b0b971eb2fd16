"""Does subtracting the held-out speaker's mean logits help? A diagnostic for issue 12, not a product path.

Kaldi normalises features per speaker; for a linear head on frozen states, subtracting a speaker's mean pooled
state is the same as subtracting that speaker's mean logit vector (the head is affine). This scores every FSDD
clip of each fold's held-out speaker with that fold's saved classifier and reports top-1 accuracy

- `raw`: as the model says,
- `centred_all`: minus the mean logits of all the speaker's clips (balanced: 50 of each digit),
- `centred_K`: minus the mean of K random clips of the speaker (mean and worst over `--draws` draws),
- `centred_one_digit`: minus the mean of one digit's clips (averaged over the ten digits),

so the gain can be told apart from the test set's class balance, which the centring also uses.

    python benchmarks/speaker_centring.py "runs/fsdd/probe-{speaker}" --clips 10 50

Prints each fold and the mean; writes JSON (--output): every fold's scores and every draw, the mean, the settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._checks import existing_model, run_script, writable_path  # noqa: E402  (first: no downloads)
from benchmarks._common import machine  # noqa: E402
from benchmarks.pretrained import FSDD, SPEAKERS  # noqa: E402
from recipes.fsdd.prepare_fsdd import read_recordings  # noqa: E402

from hfspeech.cli.flags import number_in, positive  # noqa: E402


def held_out_logits(model_dir: str, speaker: str) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, labels], label index [N]) of the fold's model on every clip of `speaker`."""
    from hfspeech.data.audio import decode_audio
    from hfspeech.inference.classifier import AudioClassifier

    classifier = AudioClassifier.from_pretrained(model_dir)
    rows = [(path, digit) for path, digit, who in read_recordings(FSDD) if who == speaker]
    rate = classifier.feature_extractor.sampling_rate
    logits = classifier.logits([decode_audio(str(path), rate) for path, _ in rows])
    labels = [classifier.id2label[index] for index in range(logits.shape[1])]
    return logits, np.array([labels.index(digit) for _, digit in rows])


def accuracy_centred_on(logits: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float:
    """Top-1 accuracy after subtracting the mean logits of `rows` (the speaker's clips the centring may see)."""
    return float(((logits - logits[rows].mean(0)).argmax(1) == labels).mean())


def fold_scores(logits: np.ndarray, labels: np.ndarray, clips: list[int], draws: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels))
    scores = {"raw": float((logits.argmax(1) == labels).mean()),
              "centred_all": accuracy_centred_on(logits, labels, everything),
              "centred_one_digit": float(np.mean([accuracy_centred_on(logits, labels, np.flatnonzero(labels == label))
                                                  for label in np.unique(labels)]))}
    for count in clips:
        scores[f"centred_{count}"] = [accuracy_centred_on(logits, labels, rng.choice(everything, count, replace=False))
                                      for _ in range(draws)]
    return scores


def summary(folds: dict) -> dict:
    """Mean over folds; for the K-clip rows, the mean and the worst draw of the fold-averaged accuracy."""
    out = {}
    for key in next(iter(folds.values())):
        values = np.array([folds[speaker][key] for speaker in folds])
        if values.ndim == 1:
            out[key] = round(float(values.mean()), 4)
        else:
            per_draw = values.mean(0)
            out[key] = {"mean": round(float(per_draw.mean()), 4), "worst": round(float(per_draw.min()), 4)}
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_pattern", help='a fold\'s model folder with "{speaker}" for the held-out speaker')
    parser.add_argument("--clips", type=number_in(int, 1, 500), nargs="+", default=[10, 50],
                        help="K: clips the centring may see (at most the speaker's 500)")
    parser.add_argument("--draws", type=positive(int), default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "speaker_centring.json", help="JSON results")
    args = parser.parse_args(argv)
    if "{speaker}" not in args.model_pattern:  # one model for every fold would have heard three of the speakers
        parser.error(f'model_pattern {args.model_pattern}: needs "{{speaker}}", each fold\'s own model')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    for speaker in SPEAKERS:
        existing_model(args.model_pattern.format(speaker=speaker), "model_pattern")
    writable_path(args.output, "--output")
    folds = {}
    for speaker in SPEAKERS:
        logits, labels = held_out_logits(args.model_pattern.format(speaker=speaker), speaker)
        folds[speaker] = fold_scores(logits, labels, args.clips, args.draws, args.seed)
        print(speaker, {key: value for key, value in folds[speaker].items() if not isinstance(value, list)}, flush=True)
    result = {"model_pattern": args.model_pattern, "clips": args.clips, "draws": args.draws, "seed": args.seed,
              "machine": machine(), "folds": folds, "mean": summary(folds)}
    print(json.dumps(result["mean"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    run_script(main)
