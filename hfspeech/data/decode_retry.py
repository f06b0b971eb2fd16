"""A decoded table read back from its cache has its failed rows decoded again, and only those.

`data.prepare` keeps each bad file as a row carrying its `error` in the split's decoded cache. A failure may be the
decoder's rather than the file's (torchcodec missing, a codec added since): read back, it stayed a failure for good
with `--skip_bad_files`, and a run that stopped on it removed the whole cache, so that the next run decoded every
good clip again (50,000 clips for one bad file). The cache is kept now, and a run that reads it back decodes its
failed rows again: each that decodes now takes its place, the rows' order and the table's fingerprint stay as they
were (what is cached under that fingerprint is that table's audio). The rows decoded again are cached beside the
table (`hfspeech-retried-*.arrow`, named by the table's file and the rows), so the next run reads them from disk;
held in memory, every later run decoded them all again (a whole table once decoded without its codec). Only the
failures of that file are tried once more, in memory: a file still bad costs each run what its failure costs.

The decoded cache's name (`decoded_fingerprint`) is made of what decides its rows: the split (its files' stat), the
bytes of its audio files (`clip_digests.files_content_key`: a file rewritten with its size and times kept), the
decoding flags, and the decoder itself (`decoder_code`: the code of every hfspeech function and class the decoding
reaches, and the versions of the libraries that read and resample), so that an edit of the decoder names new caches
without a hand-kept layout number that an edit could leave as it was.

Imports `datasets` and `data.columns`, `data.cache_users`, `data.clip_digests`; reads the code of `data.prepare`'s
decoder and what it reaches (imported when a fingerprint is made, by then already imported).
"""

from __future__ import annotations

import ast
import glob
import hashlib
import importlib
import importlib.util
import json
import logging
import marshal
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

from datasets import Dataset, concatenate_datasets
from datasets.fingerprint import Hasher

from hfspeech.data import cache_users
from hfspeech.data.clip_digests import files_content_key
from hfspeech.data.columns import column_values

logger = logging.getLogger("hfspeech.data")

# In the name of every decoded cache, beside `decoder_code`, which changes by itself with the decoder's code
DECODED_LAYOUT = "input_values,length,path,error,label/1"
RETRIED_PREFIX = "hfspeech-retried-"
# Where the decoding starts (`data.prepare`'s `datasets.map` function); `decoder_code` follows it from there
DECODER_ROOT = ("hfspeech.data.prepare", "_decoder")
# What reads and resamples the audio outside hfspeech's code: a new version may give other samples
DECODER_LIBRARIES = ("numpy", "soundfile", "soxr", "torchcodec")


def decoded_fingerprint(split: Dataset, settings: list, features, content: Optional[str] = None) -> str:
    """The fingerprint of `split` decoded with `settings` into `features`, named by hfspeech rather than by datasets'
    hash of the map's arguments: known before the map, so that a run tells a warm cache (read even where it cannot
    write, its failures retried) from a cold one. Made of the bytes of its audio files too (`files_content_key`:
    0.05-0.1 s for 2,000 FSDD clips) and of the decoder's code (`decoder_code`: ~0.1 s once a process, 3 ms after)."""
    content = files_content_key(split) if content is None else content  # (given: the caller's, already read)
    return Hasher.hash([split._fingerprint, *settings, features.to_dict(), DECODED_LAYOUT, content, decoder_code()])


def decoder_code() -> str:
    """A digest of what decodes a clip: the code (`ast`, less docstrings and comments) of `DECODER_ROOT` and of every
    function, class and constant of its package that it names, followed name by name (imports too, inside functions
    as well) through the package's files, and the versions of `DECODER_LIBRARIES`. Read from the files, not from the
    objects in memory, so that it is the same in every process and whatever a process imported or swapped in; an
    edit of any of that code names new decoded caches: the layout number bumped by hand was left as it was when the
    decoder changed, and the earlier decoding's audio was read back as this one's."""
    package = DECODER_ROOT[0].split(".")[0]
    parts, queue, seen, sources = {}, [DECODER_ROOT], set(), {}
    while queue:
        module, name = queue.pop()
        if (module, name) in seen:
            continue
        seen.add((module, name))
        if module not in sources:  # read once a call: an edit since the last call is seen
            sources[module] = _source_of(module)
        if sources[module] == "":  # a module without its source (.pyc only): its compiled code, and the version
            parts[f"{module} (compiled)"] = _compiled_code(module)
        found = _definitions(module, sources[module] or "").get(name)
        if found is None:  # a builtin, a local name: nothing of the package's
            continue
        parts[f"{module}:{name}"] = found[0]
        for reference in found[1]:
            if reference[0].split(".")[0] == package and not _is_module(*reference):
                queue.append(reference)
    return hashlib.sha256(json.dumps([sorted(parts.items()), _library_versions()]).encode()).hexdigest()


def _source_of(module: str) -> Optional[str]:
    """`module`'s source text, as its loader reads it without importing it (its parents are): from its file, or from
    a zip on the path (read as a file, a zipped install followed no code at all). None where `module` is no module (a
    class's attribute followed as one); "" where it has no source (an install of compiled files only)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, AttributeError, ValueError):
        return None
    if spec is None or spec.loader is None or not hasattr(spec.loader, "get_source"):
        return None
    try:
        return spec.loader.get_source(module) or ""
    except (ImportError, OSError, UnicodeDecodeError):
        return ""


def _compiled_code(module: str) -> str:
    """A digest of `module`'s compiled code and the installed hfspeech's version, where its source is not there to
    follow names through: an upgrade still names new caches."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        code = importlib.util.find_spec(module).loader.get_code(module)
        digest = hashlib.sha256(marshal.dumps(code)).hexdigest()
    except Exception as error:  # any loader's own failure: the version alone then
        digest = type(error).__name__
    try:
        return f"{digest} hfspeech=={version('hfspeech')}"
    except PackageNotFoundError:
        return digest


@lru_cache(maxsize=256)
def _definitions(module: str, source: str) -> dict[str, tuple[str, tuple]]:
    """{name: (its code as `ast` dumps it, less docstrings; the (module, name) of each name it reads)} for the
    top-level functions, classes, constants and imports of `module`'s `source`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    imports = _imports(tree, module)
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
        else:
            continue
        reads = _names_read(node, {**imports, **_imports(node, module)}, module)
        for name in names:
            found[name] = ast.dump(_without_docstrings(node)), reads
    return {**{name: ("import", (where,)) for name, where in imports.items()}, **found}


def _imports(tree: ast.AST, module: str) -> dict[str, tuple[str, str]]:
    """{name: (module, name there)} of the `from X import name` statements in `tree` (relative ones read against
    `module`)."""
    imports = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[:-node.level] + ([base] if base else []))
            imports.update({alias.asname or alias.name: (base, alias.name) for alias in node.names})
    return imports


def _names_read(node: ast.AST, imports: dict, module: str) -> tuple:
    """The (module, name) of each name `node` reads: imported from elsewhere, or defined beside it in `module`; and
    of each attribute read through an imported name (`audio.decode_audio` after `from hfspeech.data import audio`:
    the module's function, which naming the module alone did not follow; an attribute of a class: no file, none)."""
    reads = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            reads.add(imports.get(child.id, (module, child.id)))
        elif isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name) and child.value.id in imports:
            reads.add((".".join(imports[child.value.id]), child.attr))
    return tuple(sorted(reads))


def _is_module(module: str, name: str) -> bool:
    """Whether `name` in `module` is a module of its package (`from pkg import module`): not code to read (its
    functions are read as they are named). Asked of the import system (a zipped install has no folder to look in),
    which imports `module` only where it is a package (its `__init__`): `find_spec` of a name in a plain module
    imported the module (`data.streaming`, and torch with it, for a function-local import of one name)."""
    try:
        spec = importlib.util.find_spec(module)
        return spec is not None and spec.submodule_search_locations is not None and \
            importlib.util.find_spec(f"{module}.{name}") is not None
    except (ImportError, AttributeError, ValueError):  # `module` is no module
        return False


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """`tree` less the docstring of each class and function in it: their wording decides no sample."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=1)
def _library_versions() -> list[str]:
    """`name==version` of each of `DECODER_LIBRARIES`, from their metadata (none is imported for it)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for name in DECODER_LIBRARIES:
        try:
            versions.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} absent")
    return versions


def retried_cache_name(decoded: Dataset, failed: list[int]) -> Optional[str]:
    """Where `decoded`'s `failed` rows, decoded again, are cached: beside its cache file, named by that file (its
    name first, so that `retried_files_of` finds them when the table is removed) and the rows; None where it has no
    file."""
    if not decoded.cache_files:
        return None
    table = Path(decoded.cache_files[0]["filename"])
    return str(table.parent / f"{RETRIED_PREFIX}{table.stem}-{Hasher.hash([table.name, failed])}.arrow")


def retried_files_of(table_file: str) -> list[str]:
    """The files of rows decoded again (`retried_cache_name`) beside the decoded table `table_file` (its shards'
    too: `<name>_00000_of_00002`), to be removed with it (`data.decoded_caches`)."""
    table = Path(table_file)
    return sorted(glob.glob(f"{glob.escape(str(table.parent / (RETRIED_PREFIX + table.stem)))}[-_]*.arrow"))


def with_failures_retried(split: Dataset, decoded: Dataset, decode_into: Callable[[Dataset, Optional[str]], Dataset],
                          may_write: bool = True) -> Dataset:
    """`decoded` (`split` read back from the cache) with each row whose `error` is set decoded again: the rows of
    `split` given to `decode_into(rows, cache_file_name)` (None: in memory), written beside the table where
    `may_write` (`retried_cache_name`); the rows that decode now replace their failures in place."""
    failed = [row for row, error in enumerate(column_values(decoded, "error")) if error]
    if not failed:
        return decoded
    name = retried_cache_name(decoded, failed) if may_write else None
    was_cached = name is not None and bool(cache_users.cached_files(name))
    if name is not None and not was_cached and cache_users.cache_folder_problem(Path(name).parent) is not None:
        name = None  # none there, and none can be written (a read-only cache): in memory
    rows = split.select(failed, keep_in_memory=True)
    again = decode_into(rows, name)
    if was_cached:  # read back: its own failures tried once more, in memory (a decoder mended since)
        again = with_failures_retried(rows, again, decode_into, may_write=False)
    mended = [row for row, error in enumerate(column_values(again, "error")) if not error]
    if not mended:
        return decoded
    if not was_cached:
        logger.warning("data: %d of the %d clip(s) that failed to decode when the cache was written decode now "
                       "(e.g. %s)", len(mended), len(failed), again[mended[0]]["path"])
    order = list(range(len(decoded)))
    for row in mended:
        order[failed[row]] = len(decoded) + row
    stitched = concatenate_datasets([decoded, again]).select(order, keep_in_memory=True)
    stitched._fingerprint = decoded._fingerprint  # the same table of clips, its failures decoded
    return stitched
