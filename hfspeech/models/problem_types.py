"""The ``config.problem_type`` values, without torch: the ONNX inference path reads them too."""

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
MULTI_LABEL = "multi_label_classification"
SINGLE_LABEL = "single_label_classification"  # what a classifier of 2+ labels infers at its first step
