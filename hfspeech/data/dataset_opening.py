"""Opening `--dataset_name` with `datasets.load_dataset`: a Hub name, or a local folder of data files (a clone of
a dataset repo, an audio folder). What a user can get wrong there is one line naming the flag (`data.hub_stream`
and `data.loading` both open datasets here).

A local clone is built into the datasets cache once and read from there. datasets names that build after the
README's `configs:` patterns and `dataset_info`, not after the files they match: rows added to a shard, a clip's
bytes rewritten or a new shard were never seen, and every later run trained on the old rows without a word. So the
build of a local folder is named (its `config_id`) after the identity of the files its configuration resolves to
(path, size, mtime_ns, ctime_ns: a rewrite within the same second changes ctime): files that changed are built
afresh into a new folder, and the old build is left as it was for a run still reading it. The split's fingerprint
hashes that folder's name, so the decoded audio hfspeech caches by fingerprint (`data.prepare`) is decoded afresh
too. A Hub name is left to datasets (its builds are named after the repo's commit)."""

from __future__ import annotations

import os
import re
from typing import Optional

from datasets import load_dataset, load_dataset_builder
from datasets.exceptions import DatasetGenerationError, DatasetsError, SplitsVerificationError
from datasets.fingerprint import Hasher

from hfspeech.errors import DataError


def open_datasets_dataset(name: str, config_name: Optional[str], streaming: bool = False,
                          cache_dir: Optional[str] = None):
    """`load_dataset(name, config_name)`: a Hub name or a local folder of data files (a clone of a dataset
    repo), a local folder's build keyed by its files (see the module docstring). What a user can get wrong there
    is a `DataError` naming the flag, not datasets' traceback."""
    folder = os.path.expanduser(name)
    if os.path.isfile(folder):
        raise DataError(f"--dataset_name {name}: a file, not a dataset; give the folder that holds the dataset's "
                        "files (or a CSV/TSV/JSONL manifest with --train_file)")
    if not os.path.isdir(folder) and _looks_like_a_path(name):
        raise DataError(f"--dataset_name {name}: folder not found")
    try:  # an absolute path: datasets names a local dataset after its folder, and `.` has no name
        if not os.path.isdir(folder):
            return load_dataset(name, config_name, streaming=streaming, cache_dir=cache_dir)
        folder = os.path.abspath(folder)
        keyed = {} if streaming else {"config_id": clone_config_id(folder, config_name, cache_dir)}
        return load_dataset(folder, config_name, streaming=streaming, cache_dir=cache_dir, **keyed)
    except ConnectionError as error:  # datasets' own, for a name that is neither a folder nor in its cache
        import datasets

        why = ("HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set" if datasets.config.HF_HUB_OFFLINE
               else "no network, or the name is wrong")
        raise DataError(f"--dataset_name {name}: no such folder, and the Hub cannot be reached ({why}); give a "
                        "local folder (a clone of the dataset repo, or one written by save_to_disk)") from error
    except SplitsVerificationError as error:
        raise DataError(_stale_card(name, error)) from error
    except (DatasetsError, FileNotFoundError, ValueError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and "scripts are no longer supported" not in str(error):
            raise
        raise DataError(_load_problem(name, config_name, error)) from error


def clone_config_id(folder: str, config_name: Optional[str], cache_dir: Optional[str]) -> str:
    """datasets' name for the build of `config_name` of a local folder, with a hash of the identity of the data
    files it resolves to (metadata files included): another name, so another build, once any of them changed."""
    builder = load_dataset_builder(folder, config_name, cache_dir=cache_dir)
    files = sorted({str(path) for split in (builder.config.data_files or {}).values() for path in split})
    identity = Hasher()
    for path in files:
        stat = os.stat(path)
        identity.update((path, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
    return f"{builder.config_id}-files-{identity.hexdigest()[:16]}"


def _stale_card(name: str, error: SplitsVerificationError) -> str:
    """The README's `dataset_info` split sizes (or splits) no longer match the data files, on one line."""
    pairs = re.findall(r"SplitInfo\(name='([^']*)'[^)]*?num_examples=(\d+)", str(error))
    sizes = [f"split '{split}': {card} rows in the card, {files} in the files"
             for (split, card), (_, files) in zip(pairs[::2], pairs[1::2])]
    found = "; ".join(sizes) or f"splits {reason_in_one_line(error)}"
    readme = os.path.join(os.path.expanduser(name), "README.md")
    return (f"--dataset_name {name}: the dataset_info of its README.md no longer matches the data files ({found}): "
            f"the files changed after the card was written; correct or remove the split sizes under dataset_info "
            f"in {readme}")


def _looks_like_a_path(name: str) -> bool:
    """A name that cannot be a Hub id (`name` or `org/name`): `./x`, `/x`, `~/x`, `x/`, `a/b/c`, `a\\b`."""
    return name.startswith((".", "/", "~")) or name.endswith(("/", os.sep)) or name.count("/") > 1 or "\\" in name


def _load_problem(name: str, config_name: Optional[str], error: BaseException) -> str:
    """datasets' message for a dataset it cannot load, on one line and with the flag that mends it."""
    text = reason_in_one_line(error)
    configs = re.search(r"\[[^\]]*\]", text)
    configs = configs.group(0) if configs else "see the dataset card"
    if "Config name is missing" in text:
        return f"--dataset_name {name} has several configurations; choose one with --dataset_config_name {configs}"
    if "BuilderConfig" in text and "not found" in text:
        return f"--dataset_config_name {config_name}: {name} has no such configuration (available: {configs})"
    if "scripts are no longer supported" in text:
        return (f"--dataset_name {name}: {text}; this version of datasets runs no loading scripts: use the "
                "dataset's data files (a Hub dataset's Parquet conversion), a save_to_disk folder, or "
                "--data_dir / --train_file")
    return f"--dataset_name {name}: {text}"


def reason_in_one_line(error: BaseException) -> str:
    """datasets' message on one line, without its usage example; the cause of a generation error ("An error
    occurred while generating the dataset"), and for a data file whose columns differ from the first's, both."""
    if isinstance(error, DatasetGenerationError) and error.__cause__ is not None:
        error = error.__cause__
    if hasattr(error, "table_column_names") and hasattr(error, "details"):  # datasets.table.CastError
        return (f"a data file has the columns {error.table_column_names}, the dataset "
                f"{error.requested_column_names}: {error.details()}")
    text = str(error).split("Example of usage")[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__
