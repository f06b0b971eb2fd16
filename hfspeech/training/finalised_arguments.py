"""transformers' `TrainingArguments` as the run uses them: parsed (`training.command_line`), then changed once,
here, from the data the run found (a validation split or none, a stream) and its problem type, before the Trainer
is built (`training.run`).
"""

from __future__ import annotations

from typing import Optional


def finalise_training_arguments(training_args, *, has_validation: bool, multi_label: bool,
                                streamed_rows: Optional[int] = None, streamed: bool = False) -> None:
    """The one place where `TrainingArguments` change after parsing, all decided before the Trainer exists:

    - Trainer never pushes and keeps no token (`hub.push.hub_request` took them; the run is staged and
      pushed by `hub.push.finish_run`);
    - no validation split: no evaluation and no best model to keep;
    - multi-label: the best model is the one with the best macro mAP (accuracy is not computed);
    - a stream: `max_steps` from its row count, and batches sharded per process (`training.streaming`).
    """
    from hfspeech.hub.push import token_fields
    from hfspeech.training.multilabel import multilabel_metric
    from hfspeech.training.streaming import streaming_max_steps

    for name in token_fields(training_args):
        setattr(training_args, name, None)
    training_args.push_to_hub = False
    if not has_validation:
        training_args.eval_strategy = "no"
        training_args.load_best_model_at_end = False
    if multi_label and multilabel_metric(training_args.metric_for_best_model) != training_args.metric_for_best_model:
        training_args.metric_for_best_model = multilabel_metric(training_args.metric_for_best_model)
        training_args.greater_is_better = True
    if streamed:
        training_args.max_steps = streaming_max_steps(streamed_rows, training_args)
        # A plain-torch TrainingStream + no dispatching = accelerate's IterableDatasetShard (`training.streaming`).
        training_args.accelerator_config.dispatch_batches = False

