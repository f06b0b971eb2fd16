"""`transformers.Trainer` with what audio fine-tuning adds to it.

- Class imbalance: a class-weighted loss and oversampling (the weights: `training.class_weights`).
- Multi-label: when `config.problem_type` is `multi_label_classification`, the loss is BCE-with-logits
  on the multi-hot labels, computed here for *every* model (transformers' Wav2Vec2-family heads only
  compute cross-entropy), optionally with a per-class `pos_weight`.
- Pretrained encoders: a head learning rate and layer-wise learning-rate decay (`training.optim`).
- `group_by_length` from the clip lengths measured at preparation (the transformed views yield
  cropped waveforms only, so the Trainer could not find a length column itself).

All of it works for any model (the baselines and every AutoModelForAudioClassification), because it
acts on the logits, the optimizer and the sampler, not inside the model.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch
from transformers import Trainer

from hfspeech.data.transforms import TransformedSplit
from hfspeech.errors import UsageError
from hfspeech.evaluation.metrics import means_balanced_accuracy, metric_names
from hfspeech.models.losses import multi_label_loss
from hfspeech.models.scores import is_multi_label
from hfspeech.training.checkpoints import checkpoint_write_errors
from hfspeech.training.distributed import ResumableOnCpuProcesses
from hfspeech.training.epoch_seeds import EpochLengthGroupedSampler, EpochSeeds, EpochWeightedSampler
from hfspeech.training.eval_batches import EqualLengthEvaluation
from hfspeech.training.interrupts import close_batch_generators
from hfspeech.training.lr_schedule import RecordedSchedule
from hfspeech.training.optim import parameter_groups

logger = logging.getLogger("hfspeech.train")


def checkpointing_applies(model, requested: bool) -> bool:
    """Whether `--gradient_checkpointing` can act on `model` (the Trainer calls its `gradient_checkpointing_enable`
    when training starts, where a model without it failed with a traceback). A head trained from cached features
    has no encoder left to recompute: the flag is dropped, and logged. A model that does not support it (the CNN,
    LSTM and BC-ResNet baselines: small enough not to need it) is a one-line error."""
    if not requested:
        return False
    if not hasattr(model, "gradient_checkpointing_enable"):
        logger.info("--gradient_checkpointing: the head trains from cached encoder features; nothing to checkpoint")
        return False
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise UsageError(f"--gradient_checkpointing: {type(model).__name__} does not support it (it saves memory "
                         "in large pretrained encoders); drop the flag")
    return True


def check_best_model_metric(args, compute_metrics, num_labels: int, multi_label: bool) -> None:
    """`--metric_for_best_model f1` (a name this run does not compute) failed with a KeyError traceback after the
    first epoch's training; now before it, naming the metrics there are, or `balanced_accuracy` for UAR's names."""
    wanted = args.metric_for_best_model
    if wanted is None or args.eval_strategy == "no":
        return
    names = {"loss"} | metric_names(compute_metrics, num_labels, multi_label)
    if wanted.removeprefix("eval_") in names:
        return
    if "balanced_accuracy" in names and means_balanced_accuracy(wanted):
        raise UsageError(f"--metric_for_best_model {wanted}: UAR (unweighted average recall, the mean of the "
                         "per-class recalls) is called balanced_accuracy here: give --metric_for_best_model "
                         "balanced_accuracy")
    raise UsageError(f"--metric_for_best_model {wanted}: not a metric of this run; choose from {sorted(names)}")


@contextmanager
def every_clip_scored(args) -> Iterator[None]:
    """`--dataloader_drop_last` off while an evaluation or test DataLoader is made: transformers drops the last
    incomplete batch of those too, so validation picked the best model on a subset and the test metrics and
    confusion matrix counted fewer clips than `num_test_clips` said, without a word."""
    drop_last, args.dataloader_drop_last = args.dataloader_drop_last, False
    try:
        yield
    finally:
        args.dataloader_drop_last = drop_last


@contextmanager
def without_checkpoint_mtime_note() -> Iterator[None]:
    """transformers' Trainer warns "mtime may not be reliable on this filesystem, falling back to numerical
    ordering" whenever two checkpoints of a run were saved within a second of each other (short epochs, as in
    every quick run), on any filesystem; it then orders them by step, which is right. Nothing to act on: hidden
    around the Trainer's ordering of checkpoints only, not for the whole process (other warnings stand)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mtime may not be reliable", category=UserWarning)
        yield


class AudioClassificationTrainer(RecordedSchedule, EqualLengthEvaluation, ResumableOnCpuProcesses, Trainer):
    """A Trainer that can weight the cross-entropy by class and oversample rare classes; evaluation batches of
    equal-length clips for models that read the padding (`training.eval_batches`).

    `class_weights`: one weight per class for the single-label loss (None: the model's own loss).
    `sample_weights`: one weight per training example for a `WeightedRandomSampler` drawing with
    replacement (None: the Trainer's usual sampler).
    `head_learning_rate`, `layerwise_lr_decay`: see `training.optim.parameter_groups`.
    `train_lengths`: one length per training example, for `group_by_length`.
    `pos_weight`: one weight per class for the positive term of the multi-label BCE (None: unweighted).
    """

    def __init__(self, *args, class_weights: Optional[Sequence[float]] = None,
                 sample_weights: Optional[Sequence[float]] = None, head_learning_rate: Optional[float] = None,
                 layerwise_lr_decay: Optional[float] = None, train_lengths: Optional[Sequence[int]] = None,
                 pos_weight: Optional[Sequence[float]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        # Every loss here is a batch mean (class-weighted, multi-label, mixup, and the forward of models that take
        # **kwargs without reading num_items_in_batch: Whisper clip pooling, label scoring). Trainer divides a loss
        # by --gradient_accumulation_steps only when the model takes no loss kwargs; left as it detects it, those
        # losses (and their gradients) were N times too large with N accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.pos_weight = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32)
        if self.is_multi_label and class_weights is not None:
            raise UsageError("class weights are for single-label cross-entropy; for multi-label data use "
                             "--pos_weight_from_frequencies")
        if self.pos_weight is not None and not self.is_multi_label:
            raise UsageError("pos_weight is for multi-label BCE; this model's problem_type is "
                             f"{getattr(self.model.config, 'problem_type', None)!r}")
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.sample_weights = None if sample_weights is None else torch.as_tensor(sample_weights, dtype=torch.double)
        self.head_learning_rate = head_learning_rate
        self.layerwise_lr_decay = layerwise_lr_decay
        self.train_lengths = None if train_lengths is None else list(train_lengths)
        if self.sample_weights is not None and self.args.group_by_length:
            raise UsageError("oversampling and group_by_length both choose the batches: use one of them")
        self.args.gradient_checkpointing = checkpointing_applies(self.model, self.args.gradient_checkpointing)
        if isinstance(self.train_dataset, TransformedSplit):  # crops and augmentation from (seed, epoch): resumable
            self.add_callback(EpochSeeds(self.train_dataset))
        if self.compute_metrics is not None:
            check_best_model_metric(self.args, self.compute_metrics, self.model.config.num_labels, self.is_multi_label)

    def train(self, *args, **kwargs):
        """Trainer's, leaving no DataLoader workers behind a failed or interrupted run (`close_batch_generators`)."""
        try:
            return super().train(*args, **kwargs)
        except BaseException as error:
            close_batch_generators(error.__traceback__)
            raise

    def _save_checkpoint(self, *args, **kwargs):
        """A checkpoint that fills the disk (weights, optimizer state, trainer state) is one line naming the
        output folder (`training.checkpoints.checkpoint_write_errors`); other writes of a run are not called one."""
        with checkpoint_write_errors(self.args.output_dir, self.state.global_step):
            return super()._save_checkpoint(*args, **kwargs)

    def create_optimizer(self):
        if self.optimizer is not None or (self.head_learning_rate is None and self.layerwise_lr_decay is None):
            return super().create_optimizer()
        optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
        groups = parameter_groups(
            self.model, self.args.learning_rate, self.args.weight_decay,
            set(self.get_decay_parameter_names(self.model)), self.head_learning_rate, self.layerwise_lr_decay,
        )
        self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return self.optimizer

    @property
    def is_multi_label(self) -> bool:
        return is_multi_label(getattr(self.model, "config", None))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.is_multi_label:
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = multi_label_loss(outputs.logits, labels, self.pos_weight)
            return (loss, outputs) if return_outputs else loss
        if self.class_weights is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits
        loss = torch.nn.functional.cross_entropy(  # with the smoothing Trainer's own loss would apply
            logits.float(), labels, weight=self.class_weights.to(logits.device),
            label_smoothing=self.args.label_smoothing_factor,
        )
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # Logits only: a model with a weighted layer sum also returns every layer's hidden states (transformers'
        # Wav2Vec2 and Whisper classifiers), which would turn the predictions into a tuple of ragged arrays.
        ignore_keys = list(ignore_keys or []) + ["hidden_states", "attentions"]
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def get_train_dataloader(self):
        """With `--dataloader_drop_last`, fewer training clips than one batch left no batch at all: transformers
        then failed with a ValueError about `max_steps` (a traceback). Now one line."""
        dataloader = super().get_train_dataloader()
        if self.args.dataloader_drop_last and hasattr(self.train_dataset, "__len__") and len(dataloader) == 0:
            raise UsageError(f"--dataloader_drop_last: the {len(self.train_dataset)} training clips make no full "
                             f"batch of {self.args.per_device_train_batch_size} (--per_device_train_batch_size) "
                             f"on each of {self.args.world_size} process(es); lower the batch size or drop the flag")
        return dataloader

    def get_eval_dataloader(self, eval_dataset=None):
        with every_clip_scored(self.args):
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        with every_clip_scored(self.args):
            return super().get_test_dataloader(test_dataset)

    def _sorted_checkpoints(self, *args, **kwargs):
        with without_checkpoint_mtime_note():
            return super()._sorted_checkpoints(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        """Epoch batches from (--data_seed, as transformers' sampler, else --seed; epoch): resumable draws."""
        seed = self.args.seed if self.args.data_seed is None else self.args.data_seed
        if self.args.group_by_length and self.train_lengths is not None:
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return EpochLengthGroupedSampler(batch, self.train_lengths, seed)
        if self.sample_weights is None:
            return super()._get_train_sampler(train_dataset)
        return EpochWeightedSampler(self.sample_weights, seed)

    def _get_eval_sampler(self, eval_dataset):
        # transformers also groups evaluation batches by length, reading a length column the
        # transformed views do not yield; evaluation order does not change any metric, so keep it plain.
        if self.args.group_by_length:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return super()._get_eval_sampler(eval_dataset)
