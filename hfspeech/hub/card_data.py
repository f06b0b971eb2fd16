"""What the model card says of where its training clips came from, from what the run recorded: a data folder (or
manifest) written by one of hfspeech's synthetic generators (`hfspeech demo-data`: espeak-ng speech or sound
events, no recorded voice) and, for those, the rate they were generated at where the model's differs (clips made at
8 kHz, resampled to 16 kHz). A card of a model trained on espeak-ng keywords read like one of recorded speech.

The generator's info file (`dataset_info.json`, `synthetic.reuse`) is read from the data folder run_inputs.json
records, only where the run saw it there: a `--data_dir`'s is listed in data_report.json's ignored files, a
manifest's folder's is taken when the manifest's bytes are still those run_inputs.json's listing recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Optional

from hfspeech.hub.local_paths import MANIFEST_KEYS, RUN_INPUTS_FILE
from hfspeech.models.config_json import DATA_REPORT_FILE, read_run_record

INFO_FILE = "dataset_info.json"  # synthetic.reuse.INFO_FILE (hub may not import synthetic)
GENERATOR_KINDS = ("keywords", "languages", "events")  # the key each generator's parameters name it by
LISTINGS_KEY = "data_listings"  # training.resume_inputs.LISTINGS_KEY: {flag: a manifest's SHA-1}


def data_origin(run: Path, model_rate) -> str:
    """One sentence on generated training data ("" for data not known to be generated)."""
    info = generator_info(run)
    if info is None:
        return ""
    if "events" in info:
        events = ", ".join(map(str, info["events"])) if isinstance(info["events"], list) else ""
        made = f"sound events{f' ({events})' if events else ''} synthesised by hfspeech's event generator"
    else:
        version = re.search(r"\d+(?:\.\d+)+", str(info.get("espeak_ng") or ""))
        made = (f"speech synthesised by espeak-ng{f' {version.group()}' if version else ''} through hfspeech's "
                f"{'keyword' if 'keywords' in info else 'spoken-language'} generator")
    rate = info.get("sampling_rate")
    resampled = (f", generated at {rate} Hz and resampled to the model's {model_rate} Hz"
                 if isinstance(rate, int) and isinstance(model_rate, int) and rate != model_rate else "")
    return f" The clips are synthetic: {made} (`hfspeech demo-data`), not recordings{resampled}."


def generator_info(run: Path) -> Optional[dict]:
    """The generator's info file of the data the run trained on, or None (no generated data, or not known to be)."""
    record = read_run_record(run / RUN_INPUTS_FILE)
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    candidates = []
    if isinstance(data.get("data_dir"), str):
        info = os.path.normpath(os.path.join(data["data_dir"], INFO_FILE))
        if info in _ignored_paths(run):
            candidates.append(info)
    listings = record.get(LISTINGS_KEY) if isinstance(record.get(LISTINGS_KEY), dict) else {}
    for key in MANIFEST_KEYS:
        manifest = data.get(key)
        if isinstance(manifest, str) and listings.get(key) and _sha1(manifest) == listings[key]:
            candidates.append(os.path.join(os.path.dirname(manifest), INFO_FILE))
    return next((info for info in map(_generators_info, candidates) if info is not None), None)


def _ignored_paths(run: Path) -> set[str]:
    """The files data_report.json says loading left out of the data folder (its README.md, its info file ...)."""
    ignored = read_run_record(run / DATA_REPORT_FILE).get("ignored")
    return {os.path.normpath(entry["path"]) for entry in ignored if isinstance(entry, dict)
            and isinstance(entry.get("path"), str)} if isinstance(ignored, list) else set()


def _generators_info(path: str) -> Optional[dict]:
    """`path` read as a generator's info file: a JSON object with its `generator_version` and kind, else None (not
    another tool's `dataset_info.json`: datasets' `save_to_disk` writes one)."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(info, dict) and "generator_version" in info and any(kind in info for kind in GENERATOR_KINDS):
        return info
    return None


def _sha1(path: str) -> Optional[str]:
    """A manifest's SHA-1, as training's listing records it (`training.data_listings`); None if unreadable."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha1").hexdigest()
    except OSError:
        return None
