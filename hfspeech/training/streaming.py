"""The training side of `--streaming` (the data side is `data.streaming`): how the Trainer gets the stream.

Several processes (`accelerate launch --num_processes N`): the stream is handed to the Trainer as a
plain torch `IterableDataset` (`TrainingStream`) with accelerate's batch dispatching off, so
accelerate's `IterableDatasetShard` gives process i the i-th batch of every N, and completes the last
round from the first batches: every process reads the (cheap) reference stream, decodes only its own
batches, and all processes have the same number of batches per epoch -- unequal epochs would
deadlock DDP. (accelerate's default for iterable data, dispatching from process 0, concatenates the
processes' batches and fails as soon as they are padded to different lengths; `datasets`' shard split
gives processes unequal epochs.) That is also why decoding is in the collator: a bad file skipped with
`--skip_bad_files` makes its batch one clip smaller instead of one process's epoch shorter. The stream's undecoded
audio column is read as the plain `{"bytes", "path"}` it holds (`_plain_audio_columns`), so streaming WAV needs
no FFmpeg.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterator, Optional

import torch
from datasets import IterableDataset
from transformers import TrainerCallback

from hfspeech.data.hub_stream import read_errors
from hfspeech.data.system_libraries import plain_audio_features
from hfspeech.data.stream_draws import EPOCH_KEY
from hfspeech.data.streaming import StreamError
from hfspeech.errors import DataError

logger = logging.getLogger(__name__)


class PassCounter(TrainerCallback):
    """Makes the logged `epoch` count passes over the stream.

    With no length to go by, the Trainer counts an epoch as `max_steps` steps, so a pass over the
    stream ended at "epoch 0.25"; at the end of each pass this sets it to the number of passes made
    (a pass cut short by `--max_steps` counts as one). The Trainer's epoch after pass k is k - 1 plus the
    share of `max_steps` the pass took, in (0, 1], so the count is its ceiling: a single pass that takes
    all of `max_steps` ends at 1.0, and counting it as floor + 1 said "epoch 2.0".
    """

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.epoch is not None:
            state.epoch = float(max(1, math.ceil(state.epoch - 1e-9)))
        return control


class TrainingStream(torch.utils.data.IterableDataset):
    """The reference stream as a plain torch `IterableDataset`, so accelerate shards it by batches.

    A `datasets.IterableDataset` with several shards would be split by shards instead, which gives
    processes unequal epochs (see the module docstring). `set_epoch` reaches the stream's shuffle.
    """

    def __init__(self, stream: IterableDataset, num_rows: Optional[int] = None):
        self.stream = _plain_audio_columns(stream)
        self.num_rows = num_rows

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The stream's clips, each with the pass it is read in (`EPOCH_KEY`: the collator draws its crop and
        augmentation from it, `data.stream_draws`); a pass that yields none is an error, not a run that trains on
        nothing and reports success (every clip held out for validation/test, or filtered out)."""
        empty, epoch = True, self.stream.epoch  # shared by `datasets` with persistent DataLoader workers
        with read_errors("the training stream"):
            for example in self.stream:
                empty = False
                yield {**example, EPOCH_KEY: epoch}
        if empty and _reads_shards(self.stream):
            raise StreamError("the training stream has no clips: every clip of the train split was held out for "
                              "validation/test (lower --max_eval_samples or the split percentages) or is missing")


def _plain_audio_columns(stream: IterableDataset) -> IterableDataset:
    """`stream` with its undecoded `Audio` columns as plain structs (`system_libraries.plain_audio_features`):
    datasets encodes every row of a typed stream, so streaming an all-WAV folder needed FFmpeg. The collator decodes
    the clips (`decode_audio`)."""
    plain = plain_audio_features(stream.features) if stream.features else None
    return stream.cast(plain) if plain is not None and plain != stream.features else stream


def _reads_shards(stream: IterableDataset) -> bool:
    """Whether this process reads part of `stream`: `datasets` gives DataLoader worker i the shards i, i + N, ...,
    so with more workers than shards (`--dataloader_num_workers 2` over one JSONL file) the extra workers read
    none, and their empty pass is no sign that the training split is empty."""
    worker = torch.utils.data.get_worker_info()
    return worker is None or worker.id < stream.num_shards


class CountedTrainingStream(TrainingStream):
    """A `TrainingStream` whose exact row count (a local index) is its length, so the Trainer knows a pass's
    batches: a resumed run then skips the passes it made and the steps into the current one. Without it the
    Trainer counted the whole run as one epoch, and a run resumed after two passes skipped pass 0, trained on
    pass 1's order again and logged epoch 2.0 at the end of three. A stream whose count is a dataset card's
    gets no length (a wrong card would cut or pad every pass), and `TrainingStream` has no `__len__` at all:
    code that asks `hasattr(dataset, "__len__")` must not be told it has one."""

    def __len__(self) -> int:
        return self.num_rows


def training_stream(stream: IterableDataset, exact_rows: Optional[int], num_workers: int = 0) -> TrainingStream:
    """The stream for the Trainer: with a length when its row count is exact and one process reads it, else
    without. With `--dataloader_num_workers N` each worker reads its own shards and ends with its own short
    batch, so a pass has more batches than rows / batch: a length would make the Trainer end the epoch early
    and drop the last of them every pass (2 of 68 clips per pass with 2 workers)."""
    if exact_rows is None or num_workers > 0:
        return TrainingStream(stream)
    return CountedTrainingStream(stream, exact_rows)


def streaming_max_steps(num_rows: Optional[int], training_args) -> int:
    """`--max_steps` for a stream: given, or the epochs' steps over a known row count; else a clear error.

    Every process gets `ceil(rows / (batch * processes))` batches per epoch (accelerate completes the
    last round), or the floor with `--dataloader_drop_last` (the incomplete last round is dropped), and
    `gradient_accumulation_steps` batches make one step.
    """
    if training_args.max_steps and training_args.max_steps > 0:
        return training_args.max_steps
    if num_rows is None:
        raise DataError("--streaming from a dataset whose size is unknown needs --max_steps N: the learning-rate "
                        "schedule has to know the number of steps before the first one")
    global_batch = training_args.per_device_train_batch_size * training_args.world_size
    batches = num_rows // global_batch if training_args.dataloader_drop_last else math.ceil(num_rows / global_batch)
    steps_per_epoch = math.ceil(batches / training_args.gradient_accumulation_steps)
    return max(1, math.ceil(training_args.num_train_epochs * steps_per_epoch))


def check_streaming_flags(data_args, local: bool) -> None:
    """Flags that need the training split by index or its labels up front, which a stream may not have."""
    if data_args.oversample:
        raise DataError("--oversample draws training clips by index, which a stream does not have; "
                        "drop --streaming or --oversample (--class_weighted_loss works with local data)")
    if data_args.class_weighted_loss and not local:
        raise DataError("--class_weighted_loss needs the training labels up front, which a streamed Hub dataset "
                        "does not give; drop it, or stream local files (audio folder or manifests)")
