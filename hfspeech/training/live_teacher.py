"""A teacher run live on every training batch: function matching (Beyer et al. 2022, "Knowledge distillation: A
good teacher is patient and consistent").

Cached logits (`training.teacher_cache`) are the teacher's view of the clean clip; a teacher that is certain on
its training speakers then hands the student one-hot targets, and every augmented crop (sped up, pitched,
warped, reverberated, noisy, mixed) is taught the clean clip's answer. Run live, the teacher sees the very
waveform the student sees, after augmentation and mixup, so its soft targets say how much of each digit is left
in *that* clip: this is what carries the teacher's robustness to new voices over to the student.

The student's inputs are normalised by its feature extractor; the teacher gets the raw augmented waveforms
(kept beside them by `RawWaveformSplit`/`RawWaveformCollator`), mixed with the same permutation and weight as
the student's, resampled to its rate and cut to its window as in evaluation. It stays in eval mode without
gradients, on the student's device.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import soxr
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from hfspeech.data.audio import seconds_to_samples
from hfspeech.data.transforms import crop
from hfspeech.errors import HfspeechError, UsageError
from hfspeech.models import register
from hfspeech.models.inputs import batch_indices, extract_features, shares_padded_batches
from hfspeech.models.config_json import read_config_json
from hfspeech.models.folder_checks import check_model_folder
from hfspeech.models.loading import pretrained_errors
from hfspeech.models.scores import is_multi_label

RAW_COLUMN = "teacher_waveform"


class LiveTeacher:
    """A saved classifier as a teacher: ``teacher(waveforms, lengths)`` gives its logits, columns in the student's
    label order, for a padded ``[batch, samples]`` tensor of raw clips at ``sampling_rate`` (``lengths``: each
    clip's valid samples); `logits_of` for a list of clips (the cached path, `training.teacher_cache`)."""

    def __init__(self, teacher_dir: str, label_names: Sequence[str], sampling_rate: int):
        register()
        with pretrained_errors(teacher_dir):
            self.model = AutoModelForAudioClassification.from_pretrained(teacher_dir).eval()
            self.extractor = AutoFeatureExtractor.from_pretrained(teacher_dir)
        self.model.requires_grad_(False)
        self.columns = label_columns(self.model.config.id2label, label_names, teacher_dir)
        self.input_rate, self.rate = int(sampling_rate), int(self.extractor.sampling_rate)
        window = getattr(self.model.config, "max_length_seconds", None)
        self.max_samples = seconds_to_samples(window, self.rate) if window else None

    def __call__(self, waveforms: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        audio = waveforms.detach().float().cpu().numpy()
        lengths = [audio.shape[1]] * len(audio) if lengths is None else lengths.cpu().tolist()
        return self.logits_of([clip[: int(n)] for clip, n in zip(audio, lengths)], waveforms.device)

    @torch.no_grad()
    def logits_of(self, clips: Sequence[np.ndarray], device: Optional[torch.device] = None) -> torch.Tensor:
        """Logits of clips at the input rate, each resampled to the teacher's and centre-cut to its window,
        computed and returned on `device`: the run's (the student's, or the GPU for the cached path unless
        --use_cpu); without one, the CPU."""
        run_on = torch.device(device) if device is not None else torch.device("cpu")
        if next(self.model.parameters()).device != run_on:
            self.model.to(run_on)
        clips = [crop(self._at_rate(np.asarray(c, dtype=np.float32)), self.max_samples) for c in clips]
        logits = torch.zeros(len(clips), self.model.config.num_labels, device=run_on)
        for indices in self._batches(clips):  # one pass when the teacher ignores the padding
            inputs = extract_features(self.extractor, [clips[i] for i in indices])
            logits[indices] = self.model(**{k: v.to(run_on) for k, v in inputs.items()}).logits.float()
        return logits[:, self.columns]

    def _batches(self, clips: Sequence[np.ndarray]) -> list[list[int]]:
        """The clips that run together, as `predict` and the feature cache batch them: crops of mixed lengths (clips
        shorter than the crop, time-stretched ones) only where the teacher's logits ignore the padding, else by
        equal length, or a clip's soft targets depended on its batch mates (a data2vec-audio or group-norm teacher)."""
        mixed = shares_padded_batches(self.model.config, self.extractor)
        return list(batch_indices([len(clip) for clip in clips], max(1, len(clips)), mixed))

    def _at_rate(self, clip: np.ndarray) -> np.ndarray:
        if self.input_rate == self.rate:
            return clip
        return soxr.resample(clip, self.input_rate, self.rate).astype(np.float32)


def label_columns(id2label: Mapping, label_names: Sequence[str], teacher_dir: str) -> list[int]:
    """The teacher's logit column of each student label; a clear error when the label sets differ."""
    teacher_ids = {str(name): int(i) for i, name in id2label.items()}
    missing = [name for name in label_names if name not in teacher_ids]
    if missing or len(teacher_ids) != len(label_names):
        raise UsageError(f"--teacher {teacher_dir}: its labels {sorted(teacher_ids)} are not the data's "
                         f"{sorted(label_names)}")
    return [teacher_ids[name] for name in label_names]


def check_teacher_labels(teacher_dir: Optional[str], label_names: Sequence[str],
                         multi_label: Optional[bool] = None) -> None:
    """The teacher's folder (`check_teacher_folder`) and `label_columns`' refusal from its config.json alone, for
    `run.load_data` to make before the clips are decoded: made when the teacher was loaded, it came after the
    decoding and after run_inputs.json was written. In a launched run this is where each machine's copy of the folder
    is checked, once the processes have joined (`load_data` is `agreed`): checked as the flags were read, a machine
    without it left alone and the others died in gloo's set-up. None (no teacher: not a distillation): nothing."""
    if teacher_dir is not None:
        check_teacher_folder(teacher_dir)
        if multi_label is not None:  # the student's kind (`check_teacher_fits`): before decoding in a launched run too
            check_teacher_fits(teacher_dir, multi_label)
        label_columns(read_config_json(teacher_dir).get("id2label") or {}, label_names, teacher_dir)


def check_teacher_fits(teacher: str, multi_label: bool) -> None:
    """Refuse, before the data is prepared, a student the teacher's targets cannot train: a single-label
    teacher's logits are only defined up to a shift, so their sigmoids (a multi-label student's targets) meant
    nothing, and the other way round its independent sigmoids became one softmax; both ran without a word."""
    teacher_multi_label = is_multi_label(read_config_json(teacher))
    if teacher_multi_label != multi_label:
        kinds = {True: "multi-label (sigmoid)", False: "single-label (softmax)"}
        raise UsageError(f"--teacher {teacher}: a {kinds[teacher_multi_label]} classifier, but the student is "
                         f"{kinds[multi_label]}: distil from a teacher of the same kind (--problem_type)")


def check_teacher_folder(teacher_dir: str) -> None:
    """`--teacher X: model folder not found` (or whatever else makes X no saved model: `models.folder_checks`)."""
    try:
        check_model_folder(teacher_dir)
    except HfspeechError as error:
        raise UsageError(f"--teacher {error}") from None


class RawWaveformSplit(torch.utils.data.Dataset):
    """The training view with each (augmented, cropped) clip also kept raw, for the teacher: the student's
    feature extractor normalises its own copy."""

    def __init__(self, view):
        self.view = view

    def __len__(self) -> int:
        return len(self.view)

    def __getitems__(self, indices):
        return [{**row, RAW_COLUMN: np.asarray(row["input_values"], dtype=np.float32)}
                for row in self.view.__getitems__(indices)]

    def __getitem__(self, index: int):
        return self.__getitems__([int(index)])[0]


class RawWaveformCollator:
    """The run's collator, plus ``teacher_waveform`` (raw clips zero-padded to the longest) and
    ``teacher_lengths`` when the examples carry raw clips (training batches)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples: list[dict]) -> dict:
        raw = [example.pop(RAW_COLUMN) for example in examples if RAW_COLUMN in example]
        batch = self.collator(examples)
        if raw:
            padded = np.zeros((len(raw), max(len(clip) for clip in raw)), dtype=np.float32)
            for row, clip in enumerate(raw):
                padded[row, : len(clip)] = clip
            batch[RAW_COLUMN] = torch.from_numpy(padded)
            batch["teacher_lengths"] = torch.tensor([len(clip) for clip in raw])
        return batch

