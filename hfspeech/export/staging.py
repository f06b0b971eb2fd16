"""Write an export into a scratch folder beside its destination, and move it in only once it is complete.

Why: exporting into a folder that holds an earlier export used to overwrite only the files of the new format,
so an fp32 export left the earlier `model_quantized.onnx` (from other weights, perhaps) beside it, and a
TorchScript export into an ONNX export's folder left `model.onnx`, which `hfspeech predict FOLDER` then ran
instead of the new file. And an export that failed or was stopped half-way (no calibration clips, Ctrl-C)
left a folder that looked like a finished export. Now the earlier export's files go only when the new one is
complete, and a failed export leaves the destination as it was; a killed process leaves, at worst, a hidden
`.NAME-partial-*` folder beside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from hfspeech.errors import writing_to
from hfspeech.models.config_json import INT8_CHECK_FILE
from hfspeech.models.fingerprint import TRACED_FROM
from hfspeech.output_folders import named_at

EXPORT_NOT_WRITTEN = "nothing was exported (an earlier export there is as it was); make room, or export elsewhere"
# Files an export writes (config.json and preprocessor_config.json are rewritten by every export).
EXPORT_ONLY_FILES = ("model.onnx", "model_quantized.onnx", "ort_config.json", "model.torchscript.pt", TRACED_FROM,
                     INT8_CHECK_FILE)  # an earlier export's gate record describes a file this export replaces


@contextlib.contextmanager
def staged_export(output_dir: Path) -> Iterator[Path]:
    """A scratch folder to export into; on success its files replace the earlier export's in `output_dir`. A
    full or read-only disk is one line naming `output_dir` (`errors.writing_to`), the earlier export kept."""
    with writing_to(output_dir, EXPORT_NOT_WRITTEN):
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-partial-", dir=output_dir.parent))
        try:
            yield scratch
            output_dir.mkdir(exist_ok=True)
            for name in EXPORT_ONLY_FILES:
                (output_dir / name).unlink(missing_ok=True)
            # The model files last: a folder caught between two exports has no model, rather than the new model
            # beside the old config.json (labels).
            for file in sorted(scratch.iterdir(), key=lambda file: file.suffix in (".onnx", ".pt")):
                os.replace(file, output_dir / file.name)
        except Exception as error:  # a message naming a file names it where the user will look for it
            raise named_at(error, scratch, output_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
