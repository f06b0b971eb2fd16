"""The ``config.problem_type`` values, without torch: the ONNX inference path reads them too."""

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
MULTI_LABEL = "multi_label_classification"
