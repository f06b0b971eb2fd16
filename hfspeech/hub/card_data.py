"""What the model card says of where its training clips came from, from what the run recorded: a data folder (or
manifests) written by one of hfspeech's synthetic generators (`hfspeech demo-data`: espeak-ng speech or sound
events, no recorded voice) and, for those, the rate they were generated at where the model's differs (clips made at
8 kHz, resampled to 16 kHz). A card of a model trained on espeak-ng keywords read like one of recorded speech.

Said only where it is known true of ALL the run's data (`generator_info`): a card called a real train manifest
with a generated `--test_file`, FSDD recordings listed in a generator's folder, a demo folder with a folder of
recordings added, and a folder regenerated since training at another rate all "synthetic". Otherwise nothing.

Other data gets a sentence on the rates its training files were recorded at, where any is not the model's
(`data.source_rates`, counted into data_report.json as the clips were decoded): a model trained at 16 kHz on FSDD's
8 kHz recordings has never heard content above 4 kHz. A run that did not count them (before hfspeech did, streamed
data) gets none.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

from hfspeech.data.listings import path_listing
from hfspeech.hub.local_paths import MANIFEST_KEYS, RUN_INPUTS_FILE
from hfspeech.models.config_json import DATA_REPORT_FILE, read_run_record

INFO_FILE = "dataset_info.json"  # synthetic.reuse.INFO_FILE (hub may not import synthetic)
GENERATOR_KINDS = ("keywords", "languages", "events")  # the key each generator's parameters name it by
LISTINGS_KEY = "data_listings"  # training.resume_inputs.LISTINGS_KEY: {flag: `data.listings.path_listing`}


def data_origin(run: Path, model_rate, labels) -> str:
    """One sentence on generated training data, else on the rates of recorded data (`recording_rates`), or ""."""
    info = generator_info(run, labels)
    if info is None:
        return recording_rates(_as_dict(read_run_record(run / DATA_REPORT_FILE)).get("source_rates"), model_rate)
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


def recording_rates(source_rates, model_rate) -> str:
    """One sentence on the rates the training split's files were recorded at (data_report.json `source_rates`:
    {"train": {"8000": clips}}) where any is not `model_rate`; below it, the clips hold nothing above half their own
    rate. "" where they are not recorded (or not as counts) or are all at the model's rate."""
    counts = _as_dict(_as_dict(source_rates).get("train"))
    rates = {int(rate): n for rate, n in counts.items() if str(rate).isdigit() and int(rate) > 0
             and isinstance(n, int) and not isinstance(n, bool) and n > 0}
    if not isinstance(model_rate, int) or model_rate <= 0 or not rates or set(rates) == {model_rate}:
        return ""
    lowest = min(rates)
    if len(rates) == 1:
        unheard = f": the model has not heard content above {_khz(lowest / 2)}" if lowest < model_rate else ""
        return f" The training clips were recorded at {_khz(lowest)} and resampled to {_khz(model_rate)}{unheard}."
    listed = ", ".join(f"{_khz(rate)} ({n})" for rate, n in sorted(rates.items()))
    unheard = (f": the {rates[lowest]} at {_khz(lowest)} hold no content above {_khz(lowest / 2)}"
               if lowest < model_rate else "")
    return (f" The training clips were recorded at several rates (clips per rate: {listed}) and resampled to "
            f"{_khz(model_rate)}{unheard}.")


def _khz(hertz: float) -> str:
    return f"{hertz / 1000:.4g} kHz"


def generator_info(run: Path, labels) -> Optional[dict]:
    """The generator's info file of ALL the data the run trained on, or None where that is not known: each source
    it named (its `--data_dir`, or every manifest) lies in one generated folder whose info file was there before
    the run's record was written, each unchanged since training (the listing run_inputs.json recorded), the run's
    labels (`labels`) among the info's classes, and no more clips found than the generator made."""
    record = _as_dict(read_run_record(run / RUN_INPUTS_FILE))
    data, listings = _as_dict(record.get("data")), _as_dict(record.get(LISTINGS_KEY))
    sources = {key: data[key] for key in ("data_dir", *MANIFEST_KEYS) if data.get(key)}
    if not sources or data.get("dataset_name") or not all(isinstance(path, str) for path in sources.values()):
        return None  # a Hub dataset, or nothing local recorded
    folders = {_generated_folder(key, path, listings.get(key)) for key, path in sources.items()}
    if len(folders) != 1 or None in folders:
        return None  # a source not generated, changed since, or two generated folders (which rate?)
    info_path = os.path.join(folders.pop(), INFO_FILE)
    info = _generators_info(info_path)
    if info is None or os.path.getmtime(info_path) > os.path.getmtime(run / RUN_INPUTS_FILE):
        return None  # regenerated after the run (a manifest's bytes can be the same)
    classes = next((info[k] for k in ("classes", "events", "keywords") if isinstance(info.get(k), list)), [])
    found = _as_dict(read_run_record(run / DATA_REPORT_FILE)).get("num_found")
    if not labels or not set(map(str, labels)) <= set(map(str, classes)) or not isinstance(found, int) \
            or not isinstance(info.get("num_clips"), int) or found > info["num_clips"]:
        return None  # labels the generator never made, or more clips than it made: other data came in
    return info


def _generated_folder(key: str, path: str, recorded) -> Optional[str]:
    """The folder of a generator's info file that holds the source `path` (`--data_dir`, or a manifest whose
    every clip lies inside the manifest's folder), where `path` is what training listed (`recorded`); else None."""
    if not isinstance(recorded, str) or path_listing(path) != recorded:
        return None
    if key == "data_dir":
        return os.path.realpath(path)
    from hfspeech.inference.held_out import HeldOutError, manifest_clips

    folder = os.path.realpath(os.path.dirname(path))
    try:
        clips = manifest_clips(Path(path), False, None, f"--{key}")
    except HeldOutError:
        return None
    inside = all(os.path.realpath(clip).startswith(folder + os.sep) for clip, _ in clips)
    return folder if clips and inside else None  # FSDD recordings listed by a manifest put in a generator's folder


def _as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


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
