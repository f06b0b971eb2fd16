"""Room in /dev/shm for DataLoader workers' batches, said before training starts.

Workers hand each batch to the main process through shared memory. Where /dev/shm is smaller than the batches in
flight (Docker's default is 64 MB), torch's workers print "unable to allocate shared memory(shm)" tracebacks and the
run hangs without a word, for ever (measured: 10-s clips, batch 32, 2 workers in 64 MB); one warning first says why
and the way out.
"""

from __future__ import annotations

import logging
import os
import shutil

logger = logging.getLogger("hfspeech.training")
FLOAT_BYTES = 4  # a batch's waveforms are float32


def warn_if_shared_memory_short(training_args, max_samples, folder: str = "/dev/shm") -> None:
    """A warning where `folder` has less free room than the batches `--dataloader_num_workers` keep in flight
    (workers x prefetch factor, each `--per_device_train_batch_size` clips of `max_samples` float32 samples)."""
    workers = training_args.dataloader_num_workers
    if not workers or not max_samples or not os.path.isdir(folder):
        return
    in_flight = workers * (training_args.dataloader_prefetch_factor or 2)
    need = in_flight * training_args.per_device_train_batch_size * max_samples * FLOAT_BYTES
    free = shutil.disk_usage(folder).free
    if free < need:
        logger.warning("warning: %s has %.0f MB free, and %d DataLoader worker(s) keep about %.0f MB of batches in it "
                       "(%d batches of %d clips): with too little room the workers fail and training hangs; give "
                       "more (Docker: --shm-size 1g), or lower --dataloader_num_workers (0: no workers) or "
                       "--per_device_train_batch_size", folder, free / 1e6, workers, need / 1e6, in_flight,
                       training_args.per_device_train_batch_size)
