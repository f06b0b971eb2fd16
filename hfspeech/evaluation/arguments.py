"""The flags of `hfspeech evaluate` (`EvaluateArguments`), apart from the scoring in `evaluation.evaluate_model`.

Their own module so that `hfspeech evaluate --help` and a mistyped flag wait only for what the flags need: the
scoring module imports datasets, the data stack and batch inference at its top (seconds) for work `--help` never
does. `evaluation.evaluate_model` still gives `EvaluateArguments` under its old name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hfspeech.errors import UsageError
from hfspeech.inference.backends import device_form_problem
from hfspeech.inference.classifier import AGGREGATIONS

# In a help that says its own default ("default: test, else ...") or has none (a required flag): HfArgumentParser's
# formatter appends "(default: None)" to any help that does not mention %(default); this mention prints nothing.
OWN_DEFAULT = "%(default).0s"


@dataclass
class EvaluateArguments:
    model: str = field(metadata={"help": "Model folder (or Hub id) to evaluate (required)." + OWN_DEFAULT})
    output_dir: str = field(default="runs/evaluation", metadata={"help": "Where the report files go."})
    split: Optional[str] = field(default=None, metadata={
        "help": "Split to evaluate, as the data names it or by role (default: test, else the first split; a "
                "folder without split folders is one split of all its files)." + OWN_DEFAULT})
    batch_size: int = field(default=16, metadata={"help": "Windows per model call, across clips."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from a Hub repo."})
    window_seconds: Optional[float] = field(
        default=None, metadata={"help": "Window for clips longer than it (default: the clip length the model was "
                                "trained on)." + OWN_DEFAULT})
    hop_seconds: Optional[float] = field(default=None, metadata={
        "help": "Hop between windows (default: half)." + OWN_DEFAULT})
    aggregate: str = field(default="mean", metadata={"help": "How windows' scores make a clip's: mean, max or vote.",
                                                     "choices": list(AGGREGATIONS)})
    device: Optional[str] = field(default=None, metadata={
        "help": "Where a PyTorch model runs: cpu, cuda, cuda:N or mps (default: a GPU when there is one)."
                + OWN_DEFAULT})

    def __post_init__(self):
        """A batch of 0 crashed deep in scoring and one below 0 never ended; a window or hop of 0 silently meant
        the default and one below 0 cut one-sample windows without end. `hfspeech predict` refuses them too."""
        if self.batch_size < 1:
            raise UsageError(f"--batch_size must be at least 1, got {self.batch_size}")
        for name in ("window_seconds", "hop_seconds"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise UsageError(f"--{name} must be above 0, got {getattr(self, name)}")
        if self.device is not None and (problem := device_form_problem(self.device)):
            raise UsageError(f"--device: {problem}")  # as `cli.flags.device_name` says it for the other commands
