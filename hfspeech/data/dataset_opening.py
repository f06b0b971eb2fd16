"""Opening `--dataset_name` with `datasets.load_dataset`: a Hub name, or a local folder of data files (a clone of
a dataset repo, an audio folder). What a user can get wrong there is one line naming the flag (`data.hub_stream`
and `data.loading` both open datasets here).

A local clone is built into the datasets cache once and read from there. datasets names that build after the
README's `configs:` patterns and `dataset_info`, not after the files they match: rows added to a shard, a clip's
bytes rewritten or a new shard were never seen, and every later run trained on the old rows without a word. So the
build of a local folder is named (its `config_id`) after the files its configuration resolves to (path, size and
mtime_ns, as datasets keys a folder without a README: a `chmod -R`, `chown`, a `touch` that keeps the times or a
backup restored with them is no edit, and built again it made a whole new copy; a rewrite that keeps the size and
the mtime is missed, as there). The split's fingerprint hashes that folder's name, so the decoded audio hfspeech
caches by fingerprint (`data.prepare`) is decoded afresh too. The build a newer one supersedes (the same folder,
configuration and cache) is removed at once with what was computed in its folder (decodings, frozen features),
where no live run holds that folder (`data.loading` holds it while a run reads it: `cache_users.held_alone`);
each edit left a full copy of the clone for good. The patterns are resolved once (`_built_clone`: what
`load_dataset` does, its builder made once with the keyed name). A Hub name is left to datasets (its builds are
named after the repo's commit)."""

from __future__ import annotations

import copy
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Optional

from datasets import DownloadMode, VerificationMode, load_dataset
from datasets import config as datasets_config
from datasets.exceptions import DatasetGenerationError, DatasetsError, SplitsVerificationError
from datasets.fingerprint import Hasher
from datasets.load import dataset_module_factory, get_dataset_builder_class
from datasets.utils.info_utils import is_small_dataset

from hfspeech.data.cache_users import LOCK_NAME
from hfspeech.data.decoded_caches import superseded_removed
from hfspeech.errors import DataError

logger = logging.getLogger("hfspeech.data")
CLONE_BUILDS = "hfspeech-clone-builds"  # under the datasets cache: `<family>.json`, a clone's builds (`_superseded`)


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
        if streaming:  # nothing is built
            return load_dataset(folder, config_name, streaming=True, cache_dir=cache_dir)
        return _built_clone(folder, config_name, cache_dir)
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


def _built_clone(folder: str, config_name: Optional[str], cache_dir: Optional[str]):
    """`load_dataset(folder, config_name, cache_dir=cache_dir, config_id=<keyed>)` (`clone_config_id`), with the
    data files resolved once: `load_dataset_builder` then `load_dataset` resolved every pattern twice (5,000 WAVs:
    4.1-8.1 s a warm open, 2.4-4.1 s without the key). The steps are datasets 4.8's own (`load_dataset_builder`:
    the configuration chosen, its card's info, the legacy cache folder; `load_dataset`: the build reused if there,
    basic checks, every split, in memory when small); the superseded builds then go (`_superseded`)."""
    if Path(folder, datasets_config.DATASET_STATE_JSON_FILENAME).exists():  # datasets' own refusal, as before
        raise ValueError("You are trying to load a dataset that was saved using `save_to_disk`. "
                         "Please use `load_from_disk` instead.")
    module = dataset_module_factory(folder, download_mode=DownloadMode.REUSE_DATASET_IF_EXISTS, cache_dir=cache_dir)
    kwargs = dict(module.builder_kwargs)  # load_dataset_builder pops from the module's own
    data_dir, data_files = kwargs.pop("data_dir", None), kwargs.pop("data_files", None)
    chosen = kwargs.pop("config_name", config_name or module.builder_configs_parameters.default_config_name)
    dataset_name = kwargs.pop("dataset_name", None)
    info = module.dataset_infos.get(chosen) if module.dataset_infos else None
    builder_class = get_dataset_builder_class(module, dataset_name=dataset_name)

    def builder(**config_id):
        made = builder_class(cache_dir=cache_dir, dataset_name=dataset_name, config_name=chosen, data_dir=data_dir,
                             data_files=data_files, hash=module.hash, info=copy.deepcopy(info), **kwargs, **config_id)
        made._use_legacy_cache_dir_if_possible(module)
        return made

    built = builder(config_id=clone_config_id(builder()))
    built.download_and_prepare(download_mode=DownloadMode.REUSE_DATASET_IF_EXISTS,
                               verification_mode=VerificationMode.BASIC_CHECKS)
    loaded = built.as_dataset(split=None, in_memory=is_small_dataset(built.info.dataset_size))
    _superseded(folder, built)
    return loaded


def clone_config_id(builder) -> str:
    """datasets' name for `builder`'s build (of a local folder), with a hash of the data files its configuration
    resolves to (metadata files included; path, size, mtime_ns): another name, so another build, once one of them
    was edited, and the same after a `chmod`, `chown` or `touch` that kept the times."""
    files = sorted({str(path) for split in (builder.config.data_files or {}).values() for path in split})
    identity = Hasher()
    for path in files:
        stat = os.stat(path)
        identity.update((path, stat.st_size, stat.st_mtime_ns))
    return f"{builder.config_id}-files-{identity.hexdigest()[:16]}"


def _superseded(folder: str, built) -> int:
    """`built` recorded as its family's build (`$HF_DATASETS_CACHE/hfspeech-clone-builds/<family>.json`: the
    folder's real path, the configuration and the cache it is built into), and the family's earlier builds (their
    files edited since: nothing can read them again) removed at once, all their folder holds, where that folder is
    in the same cache, no live run holds it and the user did not save it (`decoded_caches.superseded_removed`); one
    line. The files removed."""
    root = os.path.realpath(built._cache_dir_root)
    # this machine's too: copies of a clone at one path on several machines (or containers) sharing a cache have
    # their own files' times, and removed each other's build on every run (reviewer R4)
    family = Hasher.hash([os.path.realpath(folder), built.config.name, root, socket.gethostname()])
    marker = os.path.join(built._cache_dir, datasets_config.DATASET_INFO_FILENAME)  # written by every build
    use = {"decoder": "clone build", "content": built.config_id, "used": time.time()}
    removed, freed = superseded_removed(CLONE_BUILDS, family, marker, use, lambda earlier: _build_files(earlier, root))
    if removed:
        logger.warning("data: removed %d file(s) (%.1f MB) of an earlier build of %s (configuration %s), whose "
                       "data files were edited since, and what was computed from it", removed, freed / 2**20,
                       folder, built.config.name)
    return removed


def _build_files(marker: str, root: str) -> list[str]:
    """Every file of the build whose `dataset_info.json` is `marker` (its folder's, below: the splits' Arrow files,
    the decodings and features computed there), but the folder's lock (`cache_users.LOCK_NAME`); none where that
    folder is not inside the cache `root` (never a file outside the datasets cache)."""
    build = os.path.realpath(os.path.dirname(marker))
    if os.path.commonpath([build, root]) != root or build == root:
        return []
    return sorted(os.path.join(where, name) for where, _, names in os.walk(build) for name in names
                  if name != LOCK_NAME)


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
