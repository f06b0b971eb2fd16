"""Where the logits come from: PyTorch, onnxruntime or TorchScript, behind one `logits(inputs)` call.

`AudioClassifier` pads, windows and averages the same way whatever runs the model; a backend only turns
the feature extractor's numpy arrays into logits. `locate_model` picks the backend from what a path
holds, so `hfspeech predict` takes a training run, an ONNX export or a TorchScript export alike.
onnxruntime is imported only when an ONNX model is loaded, torch only when a PyTorch or TorchScript one is:
the ONNX path imports neither torch nor transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from hfspeech.cpu_threads import onnx_session_options
from hfspeech.models import in_fast_layout, is_baseline
from hfspeech.models.fingerprint import made_from
from hfspeech.models.loading import WEIGHT_FILES, NotAModelError  # WEIGHT_FILES re-exported

ONNX_FILES = ("model.onnx", "model_quantized.onnx")  # fp32 first: the export writes both into one folder
TORCHSCRIPT_FILE = "model.torchscript.pt"
TORCHSCRIPT_DIR = "torchscript"  # where `hfspeech export --format torchscript` writes inside a model folder
BACKENDS = ("pytorch", "onnx", "torchscript")
EXPORT_FILES = {"onnx": ONNX_FILES, "torchscript": (TORCHSCRIPT_FILE,)}  # what an export folder of each holds
ONNX_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
                    "tensor(int32)": np.int32}


def pick_device(model=None, device=None):
    """Where a model runs: `device` (a `torch.device`, a string such as "cuda:1", or transformers pipeline's
    integers: -1 the CPU, n the n-th GPU; -1 stopped `model.to` and 0 was taken for "not given"). When none
    is given: where the model already sits, if that is not the CPU (a model the user put on `cuda:1` stays
    there, as in transformers' pipeline; it was moved to `cuda:0`), else CUDA when there is a GPU, else an Apple
    GPU (MPS), as `train` (transformers) takes one: predict, evaluate, stream and serve ran on the CPU there."""
    import torch

    if isinstance(device, int) and not isinstance(device, bool):
        device = torch.device("cpu") if device < 0 else torch.device("cuda", device)
    if device is not None:
        return available_device(device)
    sits_on = getattr(model, "device", None)
    if isinstance(sits_on, torch.device) and sits_on.type != "cpu":
        return sits_on
    return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu")


def mps_available() -> bool:
    """Whether this machine has an Apple GPU torch can use (a torch built without MPS has no `torch.backends.mps`)."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


DEVICE_FORMS = "cpu, cuda, cuda:N or mps"
DEVICE_PATTERN = r"cpu|mps|cuda(:[0-9]+)?"  # what a --device may be (its form; whether it is here: below)


def device_form_problem(text: str) -> Optional[str]:
    """Why `text` is not a `--device` in form (`DEVICE_PATTERN`), or None: the one check and wording of the flag
    for `hfspeech predict`/`stream`/`serve` (`cli.flags.device_name`) and `evaluate` (`EvaluateArguments`).
    No torch here: `--help` and an ONNX run do not import it."""
    import re

    return None if re.fullmatch(DEVICE_PATTERN, text) else f"must be {DEVICE_FORMS}, got {text}"


def available_device(device, flag: str = "device"):
    """`device` as a `torch.device`, when this machine has it; else a `UsageError` naming `flag` (`--device` for a
    command line, `device` for Python): `model.to("cuda")` without a GPU was torch's traceback ("Torch not
    compiled with CUDA enabled"), and a misspelt device torch's RuntimeError."""
    import torch

    from hfspeech.errors import UsageError

    named, cpu = (f"{flag} {device}", f"{flag} cpu") if flag.startswith("--") else \
        (f"{flag}={str(device)!r}", f"{flag}='cpu'")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"{named}: not a device; give {DEVICE_FORMS}") from None
    problem = missing_device(device)
    if problem:
        raise UsageError(f"{named}: {problem}; give {cpu}, or leave {flag} out to pick one")
    return device


def missing_device(device) -> Optional[str]:
    """Why `device` (a `torch.device`) is not on this machine, or None when it is (or is not one torch counts)."""
    import torch

    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "no CUDA device here"
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    if device.type == "mps" and not mps_available():
        return "no Apple MPS device here"
    return None


class TorchBackend:
    """A transformers model in PyTorch, on a GPU when there is one (`pick_device`)."""

    name = "pytorch"

    def __init__(self, model, device=None):
        self.device = pick_device(model, device)
        # The CNN channels-last: its oneDNN convolutions and max pooling run faster so (hfspeech.models).
        self.model = in_fast_layout(model.to(self.device)).eval()
        self.config = model.config
        # A model loaded in half precision (`dtype=torch.bfloat16`, as on a GPU) takes its float inputs in that
        # dtype, as transformers' pipeline gives them: the extractor's float32 stopped Whisper, Wav2Vec2 and AST
        # with a torch dtype error. The baselines' front end takes float32 waveforms whatever their dtype.
        self.dtype = None if is_baseline(getattr(self.config, "model_type", "")) else getattr(model, "dtype", None)

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = {name: torch.from_numpy(value).to(self.device, self.float_dtype(value))
                     for name, value in inputs.items()}
            return self.model(**batch).logits.float().cpu().numpy()

    def float_dtype(self, value: np.ndarray):
        """The dtype a float input takes on the model's device (None: as it is): the model's own, and float32 for
        a float64 array on MPS, which has no float64 (torch refuses to move one there)."""
        import torch

        if value.dtype.kind != "f":
            return None
        if self.dtype is None and value.dtype == np.float64 and self.device.type == "mps":
            return torch.float32
        return self.dtype


def disabled_optimizers(config) -> list[str]:
    """onnxruntime graph optimisations to leave out for this model: for hfspeech's baselines, the one that would
    move the quantization after a static int8 file's float first block ahead of its max pooling, which then runs
    on uint8 in NCHW, 13x slower (`hfspeech.export.quantization`). It only moves QuantizeLinear/DequantizeLinear,
    so float and dynamic int8 files run the same without it."""
    return ["QDQPropagationTransformer"] if is_baseline(getattr(config, "model_type", "")) else []


class OnnxBackend:
    """An exported `.onnx` file in onnxruntime on CPU. It is fed exactly the inputs its graph declares, in the
    graph's dtypes (the feature extractor's int32 attention mask becomes the graph's int64). Without
    `session_options` its threads are the CPUs this process may use (`hfspeech.cpu_threads`), not the host's cores."""

    name = "onnx"

    def __init__(self, path: str | Path, config, session_options=None):
        import onnxruntime

        self.path = Path(path)  # which file runs: a folder may hold model.onnx and model_quantized.onnx
        options = session_options if session_options is not None else onnx_session_options()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                                    disabled_optimizers=disabled_optimizers(config))
        self.input_types = {node.name: ONNX_INPUT_TYPES[node.type] for node in self.session.get_inputs()}
        self.config = config

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        missing = set(self.input_types) - set(inputs)
        if missing:
            raise ValueError(f"the ONNX model needs inputs {sorted(missing)} that the feature extractor does not give")
        feed = {name: np.ascontiguousarray(inputs[name], dtype=dtype) for name, dtype in self.input_types.items()}
        return self.session.run(None, feed)[0].astype(np.float32)


class TorchScriptBackend:
    """A traced `model.torchscript.pt`, on CPU: a trace records the device its constants were made on."""

    name = "torchscript"

    def __init__(self, path: str | Path, config):
        import torch

        self.path = Path(path)
        self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.config = config

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            # Traced with the feature extractor's outputs, in the order it returns them (hfspeech.export).
            return self.module(*(torch.from_numpy(value) for value in inputs.values())).float().numpy()


Backend = Union[TorchBackend, OnnxBackend, TorchScriptBackend]


def locate_model(name_or_path: str, backend: Optional[str] = None) -> tuple[str, str, Optional[Path]]:
    """`(backend, folder or Hub id, model file)` for a path: a `.onnx` or `.pt` file runs in onnxruntime or
    TorchScript; a folder runs in PyTorch when it has weights (from its current TorchScript twin when it
    has one, below), else from the ONNX or TorchScript file it holds. `backend` forces the choice for a
    folder; for a training run without that file, its one export of that kind (`run_export`). The file is None
    for PyTorch."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    path = Path(name_or_path)
    if path.is_file() and backend in (None, "onnx") and path.suffix.lower() == ".onnx":
        return "onnx", str(path.parent), path
    if path.is_file() and backend in (None, "torchscript") and path.suffix.lower() == ".pt":
        return "torchscript", str(path.parent), path
    if not path.is_dir():
        return "pytorch", name_or_path, None  # a Hub id, or a path the PyTorch loader reports on
    names = {p.name for p in path.iterdir()}
    if backend in EXPORT_FILES and names & set(WEIGHT_FILES) and not names & set(EXPORT_FILES[backend]):
        export = run_export(path, backend)  # a training run: its own `onnx/` or `torchscript/`, where it has one
        if export is not None:
            return locate_model(str(export), backend)
    onnx_file = next((name for name in ONNX_FILES if name in names), None)
    if backend == "onnx" or (backend is None and onnx_file and not names & set(WEIGHT_FILES)):
        return "onnx", str(path), path / (onnx_file or ONNX_FILES[0])
    if backend == "torchscript" or (backend is None and TORCHSCRIPT_FILE in names and not names & set(WEIGHT_FILES)):
        return "torchscript", str(path), path / TORCHSCRIPT_FILE
    twin = current_torchscript_twin(path) if backend is None else None
    if twin is not None:
        return "torchscript", str(path), twin
    return "pytorch", name_or_path, None


def run_export(run_dir: Path, backend: str) -> Optional[Path]:
    """The one folder inside a training run holding an export for `backend` (`hfspeech export` writes `RUN/onnx`,
    `RUN/torchscript`), or None where there is none; several is one line naming them. `--backend onnx` on a run
    was refused ("RUN/model.onnx: no such exported model file"), though it forces the backend for a folder
    holding several."""
    found = sorted(folder for folder in run_dir.iterdir() if _holds_export(folder, EXPORT_FILES[backend]))
    if len(found) > 1:
        raise NotAModelError(f"{run_dir}: --backend {backend}: the run holds {len(found)} {backend} exports ("
                             f"{', '.join(map(str, found))}); give the one to run instead of the run folder")
    return found[0] if found else None


def _holds_export(folder: Path, names) -> bool:
    """Whether `folder` holds one of the export files `names`; False for one this user may not look into (another
    user's 0700 folder inside the run stopped `--backend onnx` with its EACCES)."""
    try:
        return folder.is_dir() and any((folder / name).is_file() for name in names)
    except OSError:
        return False


def current_torchscript_twin(run_dir: Path) -> Optional[Path]:
    """`RUN/torchscript/model.torchscript.pt` when it was traced from the config and weights the run holds now
    (`hfspeech.models.fingerprint`) and there is no GPU (CUDA or Apple MPS, where `pick_device` would put the PyTorch
    model) for it, else None. It runs the same model
    within 1e-4 (checked when traced) without importing transformers: a cold `hfspeech predict RUN` then takes
    about 2 s instead of 5. The run's own config.json and preprocessor_config.json go with it, so labels and
    thresholds tuned later are read from the run; a retrained or edited run no longer matches and runs in
    PyTorch. `hfspeech train` and `distill` write it for the baselines (`hfspeech.export.write_run_twin`)."""
    twin = run_dir / TORCHSCRIPT_DIR / TORCHSCRIPT_FILE
    if not twin.is_file() or not made_from(twin.parent, run_dir):
        return None
    import torch

    return None if torch.cuda.is_available() or mps_available() else twin
