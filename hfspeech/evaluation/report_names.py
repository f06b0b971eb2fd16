"""The names of the files an evaluation leaves for a split, apart from the code that writes them.

`hfspeech stage` carries a run's test report by these names and a training run's folder check knows them; importing
them from `evaluation.report` loaded sklearn, `evaluate` and transformers' pipelines with it (about 60% of
`import hfspeech.hub.stage`, paid by every `hfspeech stage` and `push`, refusals included).
"""

from __future__ import annotations

# The one table of the files an evaluation leaves for a split, `{split}{ending}`: the writers of
# `evaluation.report` name their files from it, `hfspeech evaluate` knows an earlier evaluation by it, and
# `hfspeech stage` carries a run's test report by it. Written out three times, the names had to be kept in step
# by hand: a name one copy lacked would be refused as the user's when evaluating again into the folder, or left
# out of the staged repo.
CONFUSION_MATRIX_JSON, CONFUSION_MATRIX_PNG = "_confusion_matrix.json", "_confusion_matrix.png"
CLASSIFICATION_REPORT_JSON = "_classification_report.json"
MULTILABEL_REPORT_JSON, PER_CLASS_AP_PNG = "_multilabel_report.json", "_per_class_ap.png"
REPORT_ENDINGS = (CONFUSION_MATRIX_JSON, CONFUSION_MATRIX_PNG, CLASSIFICATION_REPORT_JSON,  # single-label
                  MULTILABEL_REPORT_JSON, PER_CLASS_AP_PNG)  # multi-label, in place of the three before
METRICS_ENDING = "_metrics.json"  # `hfspeech evaluate`'s `{split}_metrics.json` (a training run writes metrics.json)


def report_file_names(split: str) -> tuple[str, ...]:
    """Every file `write_evaluation_report` or `write_multilabel_report` may write for `split` (a model writes
    one kind or the other); `{split}_metrics.json` is not among them: only `hfspeech evaluate` writes it."""
    return tuple(split + ending for ending in REPORT_ENDINGS)


def metrics_file_name(split: str) -> str:
    """`hfspeech evaluate`'s metrics file for `split`, which names the model it scored."""
    return split + METRICS_ENDING
