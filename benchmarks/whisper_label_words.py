"""Whisper's decoder as the classifier, outside the recipe: zero-shot and a plain fine-tuning loop (issue 12).

`WhisperForLabelScoring` (`--score_label_words`) takes as the logit of a label the decoder's log-likelihood of
the label's words after the transcription prompt (`models.label_words` spellings, summed), with the encoder cut
to the clip. This script measures it without `recipes/finetune.py`: zero-shot (no training data at all) on every
FSDD clip's first second, and fine-tuned by a minimal loop on all 1,500 clips of the other speakers, with
hyperparameters fixed before any fold was run (AdamW lr 1e-5, one epoch, batch 8, 10% warm-up then linear decay,
gradient clipping at 1, no augmentation, no validation split):

    python benchmarks/whisper_label_words.py --speakers george jackson lucas nicolas --output runs/label-words

The recipe's run of the same model is `benchmarks/pretrained.py --runs labels-tiny`. Prints each fold;
writes OUTPUT/label_words.json: each fold's accuracies and training seconds, the means, the settings, the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._checks import local_pretrained, run_script, writable_path  # noqa: E402  (first: no downloads)
from benchmarks._common import machine  # noqa: E402
from benchmarks.pretrained import FSDD, SPEAKERS  # noqa: E402
from hfspeech.cli.flags import number_in, positive  # noqa: E402
from hfspeech.errors import UsageError  # noqa: E402


def load_scorer(name_or_path: str, labels: list[str], seconds: int = 1):
    """(`WhisperForLabelScoring`, processor): the converted checkpoint (`hfspeech pretrained` short name or
    folder), its encoder cut to `seconds`, as `recipes/finetune.py --score_label_words` builds it."""
    from transformers import AutoConfig, WhisperProcessor

    from hfspeech.models.whisper import cut_to_window
    from hfspeech.models.whisper.configuration_label_scoring import label_scoring_config
    from hfspeech.models.whisper.modeling_label_scoring import WhisperForLabelScoring
    from hfspeech.models.whisper.pretrained import resolve_pretrained

    checkpoint = resolve_pretrained(name_or_path)
    processor = WhisperProcessor.from_pretrained(checkpoint)
    config = AutoConfig.from_pretrained(checkpoint, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                        label2id={label: index for index, label in enumerate(labels)})
    model = WhisperForLabelScoring.from_pretrained(
        checkpoint, config=label_scoring_config(config, processor.tokenizer, labels))
    cut_to_window(model, seconds)
    return model, processor


def log_mel(feature_extractor, path: Path, seconds: int) -> np.ndarray:
    """The first `seconds` of a recording as Whisper's log-mel of a 30-s window, cut to the window's frames."""
    from hfspeech.data.audio import decode_audio
    from hfspeech.models.whisper.modeling_whisper import POSITIONS_PER_SECOND

    rate = feature_extractor.sampling_rate
    audio = decode_audio(str(path), rate)[:rate * seconds]
    features = feature_extractor(audio, sampling_rate=rate, return_tensors="np").input_features
    return features[0, :, :2 * POSITIONS_PER_SECOND * seconds]


def fsdd_clips(feature_extractor, seconds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log-mel, digit, speaker) of every FSDD recording: computed once, split into folds by speaker."""
    from recipes.fsdd.prepare_fsdd import read_recordings

    rows = read_recordings(FSDD)
    features = np.stack([log_mel(feature_extractor, path, seconds) for path, _, _ in rows])
    return features, np.array([int(digit) for _, digit, _ in rows]), np.array([who for _, _, who in rows])


def accuracy(scorer, features: np.ndarray, labels: np.ndarray, batch: int = 16) -> float:
    import torch

    scorer.eval()
    with torch.inference_mode():
        predicted = [scorer(torch.from_numpy(features[i:i + batch])).logits.argmax(1).numpy()
                     for i in range(0, len(features), batch)]
    return float((np.concatenate(predicted) == labels).mean())


def fine_tune(scorer, features: np.ndarray, labels: np.ndarray, args) -> float:
    """Cross-entropy on the label-word logits, every weight trained; returns the seconds it took."""
    import torch

    check_batch(args.batch, len(features))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    weights = [weight for weight in scorer.parameters() if weight.requires_grad]
    optimizer = torch.optim.AdamW(weights, lr=args.learning_rate, weight_decay=0.0)
    steps = args.epochs * (len(features) // args.batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / (0.1 * steps)) * max(0.0, (steps - step) / steps))
    start = time.time()
    for _ in range(args.epochs):
        order = rng.permutation(len(features))
        scorer.train()
        for first in range(0, len(order) - args.batch + 1, args.batch):
            rows = order[first:first + args.batch]
            loss = scorer(torch.from_numpy(features[rows]), labels=torch.from_numpy(labels[rows])).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(weights, 1.0)
            optimizer.step()
            schedule.step()
    return time.time() - start


def check_batch(batch: int, training_clips: int) -> None:
    """A batch larger than the training set: no step would run (and the schedule divide by zero)."""
    if batch > training_clips:
        raise UsageError(f"--batch {batch}: larger than the {training_clips} training clips of a fold; "
                         f"give at most {training_clips}")


def check_batch_fits_every_fold(args) -> None:
    """`check_batch` for the held-out speakers asked for, from the recordings' names: before minutes of work."""
    from recipes.fsdd.prepare_fsdd import read_recordings

    if args.epochs:
        speakers = [who for _, _, who in read_recordings(FSDD)]
        check_batch(args.batch, min(sum(who != speaker for who in speakers) for speaker in args.speakers))


def run_fold(args, speaker: str, clips) -> dict:
    """A fresh scorer (fine-tuning changes it) scored on `speaker` before and after training on the others."""
    features, digits, speakers = clips
    held_out = speakers == speaker
    scorer, _ = load_scorer(args.model, [str(digit) for digit in range(10)], args.seconds)
    result = {"speaker": speaker, "zero_shot": accuracy(scorer, features[held_out], digits[held_out])}
    if args.epochs:
        result["train_seconds"] = fine_tune(scorer, features[~held_out], digits[~held_out], args)
        result["fine_tuned"] = accuracy(scorer, features[held_out], digits[held_out])
    print(json.dumps(result), flush=True)
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Writes "
                                     "OUTPUT/label_words.json: each fold's accuracies, the means, the settings.")
    parser.add_argument("--model", default="whisper-tiny.en", help="short name of `hfspeech pretrained` or a folder")
    parser.add_argument("--speakers", nargs="+", default=list(SPEAKERS), choices=SPEAKERS)
    parser.add_argument("--seconds", type=number_in(int, 1, 30), default=1,
                        help="encoder window, 1 to 30; longer clips are cut")
    parser.add_argument("--epochs", type=number_in(int, 0, 1000), default=1, help="0: zero-shot only")
    parser.add_argument("--learning_rate", type=positive(float), default=1e-5)
    parser.add_argument("--batch", type=positive(int), default=8,
                        help="clips per training step, at most a fold's training clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive(int), default=2)
    parser.add_argument("--output", type=Path, default=Path("runs/label-words"),
                        help="a folder: label_words.json goes there")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    writable_path(args.output, "--output", folder=True)
    check_batch_fits_every_fold(args)
    checkpoint = local_pretrained(args.model)
    import torch
    from transformers import WhisperFeatureExtractor

    torch.set_num_threads(args.threads)
    clips = fsdd_clips(WhisperFeatureExtractor.from_pretrained(checkpoint), args.seconds)
    folds = [run_fold(args, speaker, clips) for speaker in args.speakers]
    args.output.mkdir(parents=True, exist_ok=True)
    summary = {"model": args.model, "seed": args.seed, "seconds": args.seconds, "epochs": args.epochs,
               "learning_rate": args.learning_rate, "batch": args.batch, "threads": args.threads,
               "machine": machine(), "folds": folds,
               **{key: float(np.mean([fold[key] for fold in folds])) for key in ("zero_shot", "fine_tuned")
                  if all(key in fold for fold in folds)}}
    (args.output / "label_words.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({key: value for key, value in summary.items() if key != "folds"}))


if __name__ == "__main__":
    run_script(main)
