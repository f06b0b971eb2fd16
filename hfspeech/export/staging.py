"""Write an export into a scratch folder beside its destination, and move it in only once it is complete.

Why: exporting into a folder that holds an earlier export used to overwrite only the files of the new format,
so an fp32 export left the earlier `model_quantized.onnx` (from other weights, perhaps) beside it, and a
TorchScript export into an ONNX export's folder left `model.onnx`, which `hfspeech predict FOLDER` then ran
instead of the new file. And an export that failed or was stopped half-way (no calibration clips, Ctrl-C)
left a folder that looked like a finished export. Now the earlier export's files go only when the new one is
complete, and a failed export leaves the destination as it was; a killed process leaves, at worst, a hidden
`.NAME-partial-*` folder beside it, which the next export there removes (`output_staging.written_beside`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from hfspeech.errors import writing_to
from hfspeech.models.fingerprint import EXPORT_ONLY_FILES
from hfspeech.output_staging import written_beside

EXPORT_NOT_WRITTEN = ("nothing was exported (an earlier export there is as it was); make room, or export elsewhere "
                      "(--output)")


def default_output_dir(model_dir: str | Path, fmt: str) -> Path:
    """Exports go into a subfolder of the model folder by default: `MODEL_DIR/onnx`, `MODEL_DIR/torchscript`."""
    return Path(model_dir) / fmt


def is_model_file(name: str) -> bool:
    """What `predict` runs: moved in last where an export is moved in file by file."""
    return name.endswith((".onnx", ".pt"))


@contextlib.contextmanager
def staged_export(output_dir: Path) -> Iterator[Path]:
    """A scratch folder to export into; on success it replaces the earlier export in `output_dir`
    (`output_staging.written_beside`: renamed in whole, a link's target too; where files of the user's sit beside the
    export or `output_dir` is a mount point, file by file: each copied in under a hidden name first, then the earlier
    model files set aside first and the new ones renamed in last, so a folder caught between two exports has no
    model, rather than the new model beside the old config.json (labels); a rename refused (a file held open on
    Windows) puts the earlier ones back). A full or read-only disk is one line naming `output_dir`
    (`errors.writing_to`), the earlier export kept as it was."""
    with writing_to(output_dir, EXPORT_NOT_WRITTEN), written_beside(
            output_dir, earlier=EXPORT_ONLY_FILES.__contains__, last=is_model_file) as scratch:
        scratch.mkdir()
        yield scratch
