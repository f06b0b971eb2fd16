"""Whisper's decoder as the classifier: score each label's words, zero-shot and fine-tuned (issue 12 diagnostic).

hfspeech's Whisper classifiers keep the encoder and drop the decoder (`WhisperForAudioClassification`). Trained
on three FSDD speakers, they stop at about 0.97 on the fourth: what the encoder's states say about a digit is
learned again from three voices. The decoder already knows how 680,000 hours of speakers say "six". Here the
logit of a label is the decoder's log-likelihood of the label's words after the transcription prompt (a few
spellings, `spoken_forms`, summed), with the encoder cut to the clip as in training (`models.whisper`). Zero-shot
that needs no training data at all; fine-tuned, the same logits go into cross-entropy and every weight trains.

Leave one speaker out on FSDD, hyperparameters fixed before any fold was run (AdamW lr 1e-5, one epoch, batch
8, 10% warm-up then linear decay, gradient clipping at 1, no augmentation, no validation split):

    python benchmarks/whisper_label_words.py --speakers george jackson lucas nicolas --output runs/label-words

Not a product path yet: `recipes/finetune.py` does not train this head, and it does not export to ONNX.
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
from benchmarks.pretrained import FSDD, SPEAKERS  # noqa: E402
from hfspeech.models.whisper.modeling_whisper import POSITIONS_PER_SECOND  # noqa: E402
from hfspeech.synthetic.digits import DIGIT_WORDS  # noqa: E402


def spoken_forms(label: str) -> list[str]:
    """How a transcript may write a label: lower and capitalised, with and without a full stop; a number from
    zero to nine also as the other of word and numeral (Whisper writes "6." as often as "Six.")."""
    words = [label.replace("_", " ").strip()]
    if words[0].lower() in DIGIT_WORDS:
        words.append(str(DIGIT_WORDS.index(words[0].lower())))
    elif words[0].isdigit() and int(words[0]) < 10:
        words.insert(0, DIGIT_WORDS[int(words[0])])
    forms = [form for word in words
             for form in (f" {word.lower()}", f" {word.capitalize()}", f" {word.capitalize()}.", f" {word.lower()}.")]
    return list(dict.fromkeys(forms))  # a numeral's cases coincide; each form counts once


class LabelWordScorer:
    """logits[clip, label] = log sum over the label's forms of P(form, end of text | prompt, audio)."""

    def __init__(self, model, tokenizer, labels: list[str]):
        import torch

        self.model, self.labels = model, labels
        prompt = list(tokenizer.prefix_tokens)
        sequences, owners = [], []
        for index, label in enumerate(labels):
            for form in spoken_forms(label):
                sequences.append(prompt + tokenizer.encode(form, add_special_tokens=False) + [tokenizer.eos_token_id])
                owners.append(index)
        width = max(map(len, sequences))
        self.tokens = torch.full((len(sequences), width), tokenizer.eos_token_id)
        self.scored = torch.zeros((len(sequences), width), dtype=torch.bool)  # the form's tokens and end of text
        for row, sequence in enumerate(sequences):
            self.tokens[row, :len(sequence)] = torch.tensor(sequence)
            self.scored[row, len(prompt):len(sequence)] = True
        self.owners = torch.tensor(owners)

    def form_log_likelihoods(self, input_features):
        """[clips, forms]: the summed log-probabilities of each form's tokens and end of text."""
        import torch

        states = self.model.model.encoder(input_features).last_hidden_state
        clips, forms = states.shape[0], len(self.tokens)
        tokens = self.tokens.repeat(clips, 1)
        hidden = self.model.model.decoder(input_ids=tokens[:, :-1],
                                          encoder_hidden_states=states.repeat_interleave(forms, 0)).last_hidden_state
        log_probs = self.model.proj_out(hidden).log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
        return (log_probs * self.scored[:, 1:].repeat(clips, 1)).sum(1).view(clips, forms)

    def __call__(self, input_features):
        import torch

        per_form = self.form_log_likelihoods(input_features)
        return torch.stack([torch.logsumexp(per_form[:, self.owners == index], 1)
                            for index in range(len(self.labels))], 1)


def load_scorer(name_or_path: str, labels: list[str], seconds: int = 1):
    """(scorer, processor): the converted checkpoint (`hfspeech pretrained` short name or folder), its encoder
    cut to `seconds`; a multilingual one is prompted for English transcription."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from hfspeech.models.whisper import cut_to_window
    from hfspeech.models.whisper.pretrained import resolve_pretrained

    checkpoint = resolve_pretrained(name_or_path)
    processor = WhisperProcessor.from_pretrained(checkpoint)
    model = WhisperForConditionalGeneration.from_pretrained(checkpoint)
    if model.config.vocab_size >= 51865:  # multilingual vocabulary: language and task tokens in the prompt
        processor.tokenizer.set_prefix_tokens(language="en", task="transcribe", predict_timestamps=False)
    cut_to_window(model.model, seconds)
    return LabelWordScorer(model, processor.tokenizer, labels), processor


def log_mel(feature_extractor, path: Path, seconds: int) -> np.ndarray:
    """The first `seconds` of a recording as Whisper's log-mel of a 30-s window, cut to the window's frames."""
    from hfspeech.data.audio import decode_audio

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

    scorer.model.eval()
    with torch.inference_mode():
        predicted = [scorer(torch.from_numpy(features[i:i + batch])).argmax(1).numpy()
                     for i in range(0, len(features), batch)]
    return float((np.concatenate(predicted) == labels).mean())


def fine_tune(scorer, features: np.ndarray, labels: np.ndarray, args) -> float:
    """Cross-entropy on the label-word logits, every weight trained; returns the seconds it took."""
    import torch

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    weights = [weight for weight in scorer.model.parameters() if weight.requires_grad]
    optimizer = torch.optim.AdamW(weights, lr=args.learning_rate, weight_decay=0.0)
    steps = args.epochs * (len(features) // args.batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / (0.1 * steps)) * max(0.0, (steps - step) / steps))
    start = time.time()
    for _ in range(args.epochs):
        order = rng.permutation(len(features))
        scorer.model.train()
        for first in range(0, len(order) - args.batch + 1, args.batch):
            rows = order[first:first + args.batch]
            loss = torch.nn.functional.cross_entropy(scorer(torch.from_numpy(features[rows])),
                                                     torch.from_numpy(labels[rows]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(weights, 1.0)
            optimizer.step()
            schedule.step()
    return time.time() - start


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="whisper-tiny.en", help="short name of `hfspeech pretrained` or a folder")
    parser.add_argument("--speakers", nargs="+", default=list(SPEAKERS), choices=SPEAKERS)
    parser.add_argument("--seconds", type=int, default=1, help="encoder window; longer clips are cut")
    parser.add_argument("--epochs", type=int, default=1, help="0: zero-shot only")
    parser.add_argument("--learning_rate", type=float, default=1e-5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("runs/label-words"))
    args = parser.parse_args(argv)
    import torch
    from transformers import WhisperFeatureExtractor

    from hfspeech.models.whisper.pretrained import resolve_pretrained

    torch.set_num_threads(args.threads)
    clips = fsdd_clips(WhisperFeatureExtractor.from_pretrained(resolve_pretrained(args.model)), args.seconds)
    folds = [run_fold(args, speaker, clips) for speaker in args.speakers]
    args.output.mkdir(parents=True, exist_ok=True)
    summary = {"model": args.model, "seed": args.seed, "folds": folds,
               **{key: float(np.mean([fold[key] for fold in folds])) for key in ("zero_shot", "fine_tuned")
                  if all(key in fold for fold in folds)}}
    (args.output / "label_words.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({key: value for key, value in summary.items() if key != "folds"}))


if __name__ == "__main__":
    main()
