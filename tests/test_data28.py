"""Data-layer leftovers (session 28): manifest line ends, one hash per streamed Hub clip, in-file order of a view."""

from __future__ import annotations

import hashlib
import json

import datasets
import pytest
from datasets import Audio, Dataset, Features, Value
from huggingface_hub import constants
from test_hub_dataset_inputs import load, parquet_repo, rows

from hfspeech.data.columns import column_values
from hfspeech.data.manifests import ManifestError, read_manifest
from hfspeech.data.splits import in_file_order
from hfspeech.data.stream_draws import clip_position, reference_key
from hfspeech.data.stream_rows import AudioReference, NotHeldOut

LINE_BREAKS_IN_A_STRING = "first\u2028second\u2029third\u0085fourth"  # valid unescaped inside a JSON string
ROWS = [{"path": "a.wav", "label": "yes", "text": LINE_BREAKS_IN_A_STRING},
        {"path": "b.wav", "label": "no", "text": ""}]


def _write(path, text: str) -> str:
    path.write_bytes(text.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("line_end", ["\r", "\n", "\r\n"])
def test_a_jsonl_manifest_reads_with_any_universal_line_end_and_keeps_u2028_in_strings(tmp_path, line_end):
    text = "".join(json.dumps(row, ensure_ascii=False) + line_end for row in ROWS)
    assert read_manifest(_write(tmp_path / "m.jsonl", text)) == (ROWS, ["path", "label", "text"])


def test_a_jsonl_manifest_with_mixed_line_ends_names_the_bad_line_as_an_editor_counts_it(tmp_path):
    text = '{"path": "a.wav", "label": "yes"}\r{"path": "b.wav", "label": "no"}\r\n{"path": broken}\n'
    with pytest.raises(ManifestError, match=r"m\.jsonl: line 3 is not valid JSON"):
        read_manifest(_write(tmp_path / "m.jsonl", text))


@pytest.mark.parametrize("name, separator", [("m.csv", ","), ("m.tsv", "\t"), ("semicolons.csv", ";")])
def test_a_csv_manifest_with_old_mac_line_ends_reads(tmp_path, name, separator):
    text = separator.join(["path", "label"]) + "\r" + separator.join(["a.wav", '"yes\u2028no"']) + "\r"
    assert read_manifest(_write(tmp_path / name, text)) == ([{"path": "a.wav", "label": "yes\u2028no"}],
                                                            ["path", "label"])


def test_a_semicolon_header_with_a_line_separator_in_a_quoted_name_is_still_semicolon_separated(tmp_path):
    text = '"clip\u2028file";label\na.wav;yes\n'
    assert read_manifest(_write(tmp_path / "m.csv", text)) == ([{"clip\u2028file": "a.wav", "label": "yes"}],
                                                               ["clip\u2028file", "label"])


# --- a Hub stream hashes each clip's bytes once -------------------------------------------------------------------

# Positions computed by the code before the change (hfspeech f2ee83e), which each clip's crop and augmentation are
# drawn from: a resumed or repeated run must keep drawing the same.
POSITIONS_BEFORE = {("audio.wav", b"clip one"): 641931986457105019, (None, b"clip one"): 641931986457105019,
                    ("speaker/clip.wav", None): 1074269293722126167}


@pytest.mark.parametrize("path, data", list(POSITIONS_BEFORE))
def test_a_hub_clips_position_and_name_are_those_drawn_before(path, data):
    example = AudioReference("audio", "label", "repo", by_row=False)({"audio": {"path": path, "bytes": data},
                                                                      "label": "yes"}, 3)
    assert clip_position(example) == POSITIONS_BEFORE[path, data]
    assert clip_position({"audio": {"path": path, "bytes": data}}) == POSITIONS_BEFORE[path, data]  # no key given
    if path is None:
        assert example["audio"]["path"] == ("<audio bytes without a file name: repo clip "
                                            "sha1:3d22a77b8c6e5f641a81964d0111ab4fdf529429>")
    held_before = reference_key({"path": path, "bytes": data})  # the key a held-out clip was filtered by before
    assert NotHeldOut({held_before})(example) is False and NotHeldOut(set())(example) is True


def test_a_hub_stream_hashes_each_training_clips_bytes_once_per_example(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the repo is a local folder; nothing from the Hub
    clips = rows(3)  # 9 clips, 2 held out (validation, test) and filtered out of training by their bytes' hash
    data = load(True, dataset_name=str(parquet_repo(tmp_path / "repo", {"train": clips})), max_eval_samples=1)
    clip_bytes, hashed = {row["audio"]["bytes"] for row in clips}, []
    sha1 = hashlib.sha1

    def counting_sha1(data=b"", **kwargs):
        hashed.extend([data] if data in clip_bytes else [])
        return sha1(data, **kwargs)

    monkeypatch.setattr(hashlib, "sha1", counting_sha1)
    positions = [clip_position(example) for example in data.train]  # what the collator draws each clip from
    # every clip read once (the 2 held out too: the filter drops them by that hash): was 16, the 7 kept hashed twice
    assert len(positions) == 7 and len(hashed) == len(set(hashed)) == 9


# --- in_file_order looks at the rows a view holds -------------------------------------------------------------------

def _clips(cells: list) -> Dataset:
    """Undecoded clips labelled 0, 1, 0, ...: files (`{"path", "bytes": None}`), bytes held, or missing (None)."""
    return Dataset.from_dict({"audio": cells, "label": [i % 2 for i in range(len(cells))]},
                             features=Features({"audio": Audio(decode=False), "label": Value("int64")}))


def _paths(data: Dataset) -> list[str]:
    return [clip["path"] for clip in column_values(data, "audio")]


@pytest.mark.parametrize("not_selected", [{"path": "held.wav", "bytes": b"RIFF"}, None])
def test_a_view_of_files_is_put_in_file_order_whatever_its_unselected_rows_hold(not_selected):
    files = [{"path": name, "bytes": None} for name in ("c.wav", "a.wav", "b.wav")]
    data = _clips([not_selected] + files)
    assert _paths(in_file_order(data.select([1, 2, 3]))) == ["a.wav", "b.wav", "c.wav"]
    files_only = data.filter(lambda audio: audio is not None and audio["bytes"] is None, input_columns="audio")
    assert _paths(in_file_order(files_only)) == ["a.wav", "b.wav", "c.wav"]


def test_a_view_holding_bytes_or_a_missing_clip_keeps_its_order():
    data = _clips([{"path": "c.wav", "bytes": None}, {"path": "b.wav", "bytes": b"RIFF"}, None,
                   {"path": "a.wav", "bytes": None}])
    for view in (data.select([0, 1, 3]), data.select([3, 2, 0])):
        assert in_file_order(view) is view
