"""Small mends of the twenty-fifth session's audits (their left-alone lists)."""

import json

from hfspeech.data.groups import read_groups


def test_a_jsonl_group_number_zero_is_a_group_not_an_empty_cell(tmp_path):
    manifest = tmp_path / "clips.jsonl"
    rows = [{"audio": f"{i}.wav", "label": "yes", "speaker": speaker} for i, speaker in enumerate([0, 1, 0, False])]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _, _, groups = read_groups(str(manifest), "speaker")
    assert groups == ["0", "1", "0", "False"]
