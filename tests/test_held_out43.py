"""A held-out manifest (`--eval_dir test.jsonl`) with a row whose label is null or empty: read as the label 'None'
(or ''), it was refused as "not one of the model's labels", which sent users looking for a label named None."""

import json

import numpy as np
import pytest
import soundfile as sf

from hfspeech.inference.held_out import HeldOutError, labelled_clips


@pytest.mark.parametrize("kind", ["jsonl-null", "csv-empty"])
def test_a_manifest_row_without_a_label_is_named_as_such(tmp_path, kind):
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, np.zeros(1600, np.float32), 16000)
    if kind == "jsonl-null":
        manifest = tmp_path / "test.jsonl"
        manifest.write_text("\n".join(json.dumps(row) for row in ({"path": "a.wav", "label": "yes"},
                                                                   {"path": "b.wav", "label": None})) + "\n")
    else:
        manifest = tmp_path / "test.csv"
        manifest.write_text("path,label\na.wav,yes\nb.wav,   \n")  # (blank: training's "empty label" too)
    with pytest.raises(HeldOutError, match=r"^--eval_dir .*test\.\w+: .*b\.wav: empty label \(its `label` cell"):
        labelled_clips(manifest, {"yes", "no"})
    assert labelled_clips(manifest, None)[0] == [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]  # multi-label
