"""int8 quantization of an exported ONNX model with optimum's `ORTQuantizer`.

Dynamic by default: weights are stored as int8 and activations quantized per call, so no data is needed.
Static when a calibration folder is given: activation ranges are measured on real clips first.

What is quantized, and why:
* the baselines' front end is not (its DFT and mel products are MatMuls, excluded by name): 8 bits there
  would blur the quiet bins the per-utterance normalisation then magnifies;
* the CNN's weights are nearly all Conv, so Conv is quantized (MatMul alone would leave the file as is),
  and the LSTM's are in its LSTM ops;
* transformers models (Wav2Vec2 family, AST, Whisper...) get MatMul/Gemm, where most of their weights
  are; their convolutions compute in float. Quantizing those as operators too (ConvInteger) made a
  Wav2Vec2-base-sized model 3.96x smaller instead of 3.1x, but flipped the top-1 label of 46% of clips on
  its near-tied random logits, where MatMul/Gemm alone flipped none (docs/inference.md); on a fine-tuned
  Whisper tiny.en, ConvInteger also ran slower than float convolutions. Their weights are stored as int8
  all the same, dequantized to float before the convolution (`hfspeech.export.conv_weights`).

Static int8 of a baseline is built for speed as well (demo CNN, one thread, batch of 16: 16.0 against fp32's
19.0 ms median, where the previous static file took 33.4): ReLU and max pooling are quantized too, so the
integer convolutions chain in uint8 without float in between (a ReLU folds into its convolution's output range);
weights are signed int8, onnxruntime's fast u8s8 `QLinearConv`; a convolution that reads one channel (the
spectrogram) stays float with the ReLU and pooling after it (as `QLinearConv` it took 4.3 ms, as float 1.0);
each graph of a two-graph file is quantized (`per_branch`), the unpadded one being the fast one. onnxruntime
must run it without its `QDQPropagationTransformer` (`hfspeech.inference.backends.OnnxBackend` does), which
would move the quantization ahead of that float max pooling and run the pooling on uint8 in NCHW, 13x slower
(7.7 against 0.6 ms).

Weights: signed int8 (with uint8 activations) except where Conv is quantized dynamically. That is onnxruntime's
fast integer GEMM (u8s8, VNNI's `vpdpbusd`): a fine-tuned Whisper tiny.en ran 2.0x faster than fp32 with it, but
no faster than fp32 with uint8 weights (u8u8), which only ConvInteger requires. Without VNNI, the AVX2 kernels'
16-bit intermediate sums can saturate, so the weights keep 7 bits there (`reduce_range`), as onnxruntime's
documentation advises, uint8 ones included: on an AMD EPYC without VNNI, the small random LSTM of
tests/test_export.py (dynamic, u8u8) was off by 0.257 in its logits with 8-bit weights, 0.018 with 7.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
from onnxruntime import InferenceSession
from optimum.onnxruntime.configuration import AutoCalibrationConfig, AutoQuantizationConfig
from optimum.onnxruntime.quantization import ORTCalibrationDataReader, ORTQuantizer

from hfspeech.cpu_threads import onnx_threads
from hfspeech.errors import log_lines_hidden
from hfspeech.export.conv_weights import MIN_ELEMENTS, largest_conv_weight, store_conv_weights_int8
from hfspeech.export.loading import ExportError
from hfspeech.export.root_logger import root_logger_kept
from hfspeech.export.short_names import FRONT_END, shorten_names
from hfspeech.export.unpadded_branch import has_unpadded_branch, padded_graph, per_branch
from hfspeech.models import is_baseline
from hfspeech.models.config_json import read_config_json
from hfspeech.written_elsewhere import temporary_writes

logger = logging.getLogger(__name__)

QUANTIZED_SUFFIX = "quantized"  # optimum writes model.onnx -> model_quantized.onnx
BASELINE_OPERATORS = ["Conv", "MatMul", "Gemm", "LSTM"]
TRANSFORMER_OPERATORS = ["MatMul", "Gemm"]
STATIC_CHAIN_OPERATORS = ["Relu", "MaxPool"]  # static baselines: no float between integer convolutions


def quantized_path(save_dir: Path, onnx_path: Path) -> Path:
    return save_dir / f"{onnx_path.stem}_{QUANTIZED_SUFFIX}.onnx"


def operators_to_quantize(model_type: str, static: bool = False) -> list[str]:
    if not is_baseline(model_type):
        return TRANSFORMER_OPERATORS
    return BASELINE_OPERATORS + STATIC_CHAIN_OPERATORS if static else BASELINE_OPERATORS


def quantization_config(operators: list[str], static: bool, nodes_to_exclude: list[str]):
    """Per-channel int8: uint8 weights where Conv is quantized dynamically (the only kind ORT's ConvInteger
    takes), else signed int8 weights; 7-bit weights on CPUs without VNNI (see the module docstring)."""
    options = dict(is_static=static, per_channel=True, operators_to_quantize=operators,
                   nodes_to_exclude=nodes_to_exclude)
    vnni = has_vnni()
    if "Conv" in operators and not static:
        return AutoQuantizationConfig.avx2(**options, reduce_range=not vnni)
    if vnni:
        return AutoQuantizationConfig.avx512_vnni(**options)  # 8-bit weights; it takes no reduce_range
    return AutoQuantizationConfig.avx512(**options, reduce_range=True)


def has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (avx512_vnni or avx_vnni), from /proc/cpuinfo; False where unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def front_end_nodes(onnx_path: Path) -> list[str]:
    """Names of the nodes of a baseline's in-model front end (the exporter names them `/.../frontend/...`)."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [node.name for node in graph.node if FRONT_END in node.name]


def one_channel_convolutions(onnx_path: Path) -> list[str]:
    """Names of the convolutions that read a single channel (a baseline's first, on the spectrogram) and of the
    ReLU and max pooling right after each: static int8 leaves them float (see the module docstring)."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    weights = {init.name: init.dims for init in graph.initializer}
    readers = defaultdict(list)  # value name -> the nodes reading it (rewrite.tensor_readers gives no nodes)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    names = []
    for node in graph.node:
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        weight_shape = weights.get(node.input[1]) if node.op_type == "Conv" else None
        if weight_shape is None or groups != 1 or weight_shape[1] != 1:  # [out, in / groups, kernel...]
            continue
        names.append(node.name)
        while len(readers[node.output[0]]) == 1 and readers[node.output[0]][0].op_type in STATIC_CHAIN_OPERATORS:
            node = readers[node.output[0]][0]
            names.append(node.name)
    return names


def calibration_dataset(calibration_dir: str | Path, onnx_path: Path, max_clips: int = 64, seed: int = 0,
                        skip_bad_files: bool = False):
    """Up to `max_clips` clips of an audio folder, chosen at random, centre-cropped to the model's window as
    in evaluation, and run through the model's feature extractor: the rows ORT's calibrator feeds. A file that
    cannot be decoded stops it saying how to go on, or with `skip_bad_files` is left out and counted
    (`calibration_clips`): the training folder, a natural choice, may hold the corrupt files training skipped."""
    from datasets import Dataset
    from transformers import AutoConfig, AutoFeatureExtractor

    from hfspeech.data.audio import AUDIO_EXTENSIONS, find_audio_files, seconds_to_samples
    from hfspeech.models.inputs import window_seconds_of

    files = find_audio_files(calibration_dir)
    if not files:
        raise ExportError(f"{calibration_dir}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) to calibrate on")
    files = [files[i] for i in sorted(np.random.default_rng(seed).permutation(len(files))[:max_clips])]
    extractor = AutoFeatureExtractor.from_pretrained(onnx_path.parent)
    window_seconds = window_seconds_of(AutoConfig.from_pretrained(onnx_path.parent), extractor)
    window = seconds_to_samples(window_seconds, extractor.sampling_rate)
    rows = defaultdict(list)
    for clip in calibration_clips(tuple(map(str, files)), extractor.sampling_rate, window, skip_bad_files):
        encoded = extractor(clip, sampling_rate=extractor.sampling_rate, return_tensors="np")
        for name, value in encoded.items():  # the graph takes float32 features and int64 masks
            rows[name].append(value[0].astype(np.int64 if np.issubdtype(value.dtype, np.integer) else np.float32))
    input_names = {node.name for node in onnx.load(str(onnx_path), load_external_data=False).graph.input}
    columns = {name: values for name, values in rows.items() if name in input_names}
    return Dataset.from_dict(columns).with_format("numpy")


@functools.lru_cache(maxsize=1)
def calibration_clips(files: tuple[str, ...], sampling_rate: int, window: int,
                      skip_bad_files: bool) -> tuple[np.ndarray, ...]:
    """The centre `window` samples of each decoded file; a bad one an `AudioFileError` with the `--skip_bad_files`
    hint, or skipped and the skipped counted in one warning naming the first. Kept for the next call: a two-graph
    file calibrates each graph on the same clips (`per_branch`), which decoded them, and warned of the skipped
    files, twice. Only the windows are kept: 64 whole 10-minute takes held 2.4 GB."""
    from hfspeech.data.audio import AudioFileError, decode_audio

    clips, bad = [], []
    for path in files:
        try:
            clip = decode_audio(path, sampling_rate)
            start = max(0, (len(clip) - window) // 2)
            clips.append(clip[start : start + window].copy())  # a copy: the whole clip is let go
        except AudioFileError as error:
            if not skip_bad_files:
                raise AudioFileError(error.path, f"{error.problem} (in --calibration_dir; --skip_bad_files skips "
                                     "such files, counted)") from None
            bad.append(error)
    if bad:
        logging.getLogger("hfspeech.data").warning("data: --calibration_dir: skipped %d bad file(s) "
                                                   "(--skip_bad_files; e.g. %s)", len(bad), bad[0])
    if not clips:
        raise ExportError(f"--calibration_dir: none of the {len(files)} audio files chosen could be decoded "
                          f"(e.g. {bad[0]})")
    return tuple(clips)


def holds_two_graphs(onnx_path: Path) -> bool:
    """Whether `onnx_path` is a baseline's file with a graph for unpadded batches (`hfspeech.export.unpadded_branch`);
    the config is read first, so a transformer's large file is not parsed for it."""
    config = onnx_path.parent / "config.json"
    return config.is_file() and is_baseline(read_config_json(onnx_path.parent).get("model_type", "")) \
        and has_unpadded_branch(onnx_path)


@root_logger_kept()  # onnxruntime's `logging.debug(...)` gave a bare root logger a handler for good
def quantize_int8(onnx_path: str | Path, output_dir: Optional[str | Path] = None,
                  calibration_dir: Optional[str | Path] = None, skip_bad_files: bool = False) -> Path:
    """Write `model_quantized.onnx` (with config.json, preprocessor_config.json and optimum's ort_config.json)
    into `output_dir` (default: beside `onnx_path`); returns its path. `onnx_path` is an exported `model.onnx`
    or the folder holding it. With `calibration_dir` (an audio folder, e.g. the training data) the quantization
    is static (QDQ, min-max ranges), else dynamic; `skip_bad_files`: calibration passes over files it cannot
    decode (`calibration_clips`). The root logger is left as it was (`root_logger_kept`)."""
    onnx_path = Path(onnx_path)
    if onnx_path.is_dir():
        onnx_path = onnx_path / "model.onnx"
    if not onnx_path.is_file():
        raise ExportError(f"{onnx_path}: no ONNX model to quantize (export one with `hfspeech export`)")
    save_dir = Path(output_dir) if output_dir else onnx_path.parent
    try:
        if not holds_two_graphs(onnx_path):
            return quantize_graph(onnx_path, save_dir, calibration_dir, skip_bad_files)
        if calibration_dir is not None:  # both graphs: the integer convolutions chain in the unpadded one
            return per_branch(onnx_path, quantized_path(save_dir, onnx_path),
                              lambda plain: quantize_graph(plain, plain.parent, calibration_dir, skip_bad_files))
        with tempfile.TemporaryDirectory() as scratch:  # dynamic int8 is for size: the padded graph only
            return quantize_graph(padded_graph(onnx_path, scratch), save_dir)
    finally:  # decoded once for both graphs, not kept past this export (the files may change)
        calibration_clips.cache_clear()


def quantize_graph(onnx_path: Path, save_dir: Path, calibration_dir: Optional[str | Path] = None,
                   skip_bad_files: bool = False) -> Path:
    """`quantize_int8` of a file holding one graph."""
    static = calibration_dir is not None
    quantizer = ORTQuantizer.from_pretrained(onnx_path.parent, file_name=onnx_path.name)
    if quantizer.config is None:
        raise ExportError(f"{onnx_path.parent}: no readable config.json beside {onnx_path.name}")
    operators = operators_to_quantize(quantizer.config.model_type, static)
    excluded = front_end_nodes(onnx_path)
    if static and is_baseline(quantizer.config.model_type):
        excluded += one_channel_convolutions(onnx_path)
    config = quantization_config(operators, static, excluded)
    ranges = None
    if static:
        dataset = calibration_dataset(calibration_dir, onnx_path, skip_bad_files=skip_bad_files)
        with tempfile.TemporaryDirectory() as scratch, temporary_writes():
            ranges = calibration_ranges(onnx_path, dataset, operators, str(Path(scratch) / "augmented.onnx"))
    # optimum copies the folder's preprocessors by loading each class one might be, AutoImageProcessor among them,
    # and transformers warns "Using a slow image processor as `use_fast` is unset" of an audio model that has none
    with log_lines_hidden("transformers.models.auto.image_processing_auto", "slow image processor"):
        quantizer.quantize(config, save_dir=save_dir, file_suffix=QUANTIZED_SUFFIX, calibration_tensors_range=ranges)
    quantized = quantized_path(save_dir, onnx_path)
    if is_baseline(quantizer.config.model_type):  # baselines: names were most of the file
        shorten_names(quantized)
    else:  # transformers: what stays float32 is mostly convolution weights
        store_conv_weights_int8(quantized)
    logger.info("%s int8 model: %s", "static" if static else "dynamic", quantized)
    return quantized


def calibration_ranges(onnx_path: Path, dataset, operators: list[str], augmented: str):
    """`ORTQuantizer.fit`'s min-max ranges on `onnx_threads` threads (the CPUs this process may use, or the user's
    OMP_NUM_THREADS): onnxruntime's calibrator opens its session at the host's cores, taking no options (2 threads
    under a 1-CPU quota on 2 cores), so it is opened again with its own options and that count before any clip."""
    calibrator = AutoCalibrationConfig.minmax(dataset).create_calibrator(
        onnx_path.as_posix(), operators, augmented_model_name=augmented)
    if (threads := onnx_threads()) is not None:
        options = calibrator.infer_session.get_session_options()  # its ORT_DISABLE_ALL kept
        options.intra_op_num_threads = threads
        calibrator.infer_session = None  # let go first: one copy of the model in memory at a time
        calibrator.infer_session = InferenceSession(augmented, options, providers=calibrator.execution_providers)
    calibrator.collect_data(ORTCalibrationDataReader(dataset))
    return calibrator.compute_data()


def write_int8_weights(onnx_path: str | Path, shown_as: Optional[Path] = None) -> Path:
    """Write `model_quantized.onnx` beside `onnx_path`: the float model with its convolution weights stored as
    int8 (`hfspeech.export.conv_weights`), nothing else changed; returns its path. A model with none large enough
    is refused, naming `shown_as` (default `onnx_path`): a two-graph file's graphs are rewritten from scratch
    copies, whose path the user never saw (a one-block CNN's refusal named `/tmp/tmp.../padded/model.onnx`).

    Integer convolutions did not pay on the baselines: their float front end is most of the time, and
    onnxruntime's ConvInteger/QLinearConv (with the activations' quantization around them) ran slower than the
    float convolutions. This file is as small as dynamic int8 and runs at the float model's speed.
    """
    onnx_path = Path(onnx_path)
    quantized = quantized_path(onnx_path.parent, onnx_path)
    if holds_two_graphs(onnx_path):
        return per_branch(onnx_path, quantized, lambda plain: write_int8_weights(plain, shown_as or onnx_path))
    if not store_conv_weights_int8(onnx_path, quantized):
        largest = largest_conv_weight(onnx.load(str(onnx_path)).graph)
        why = " (it has no convolution)" if not largest else (
            f" (its largest convolution has {largest} weights; under {MIN_ELEMENTS}, int8 saves less than its scales "
            "and nodes cost)" if largest < MIN_ELEMENTS else "")
        raise ExportError(f"{shown_as or onnx_path}: no convolution weights to store as int8{why}; use --quantize int8")
    if is_baseline(read_config_json(onnx_path.parent).get("model_type", "")):
        shorten_names(quantized)  # baselines: names were most of the file
    logger.info("int8-weight model: %s", quantized)
    return quantized
