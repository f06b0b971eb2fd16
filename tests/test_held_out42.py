"""`--eval_dir` takes a manifest as well as an audio folder (audit ED): the edge journey keeps its held-out
speaker in `test.csv`, and measuring the int8 file on it needed a folder of links. Read as training reads one
(path and label columns, paths relative to the manifest), every clip checked as a folder's are."""

from __future__ import annotations

import json

import pytest

from hfspeech.cli import main as cli
from hfspeech.inference.held_out import HeldOutError, labelled_clips
from tests.conftest import write_csv_manifest
from tests.test_int8_gate import held_out  # noqa: F401 (a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def manifest_of(folder, path, relative: bool = True):
    """The folder's clips as a manifest at `path` (paths relative to it, or absolute)."""
    rows = [{"path": str(clip.relative_to(path.parent) if relative else clip), "label": clip.parent.name}
            for clip in sorted(folder.rglob("*.wav"))]
    return write_csv_manifest(path, rows)


def test_a_manifest_gives_the_clips_and_labels_its_folder_gives(held_out, tmp_path):  # noqa: F811
    labels = {path.name for path in held_out.iterdir() if path.is_dir()}
    from_folder = labelled_clips(held_out, labels)
    from_manifest = labelled_clips(manifest_of(held_out, held_out.parent / "test.csv"), labels)
    assert sorted(zip(*from_manifest)) == sorted(zip(*from_folder))
    assert len(from_folder[0]) == len(list(held_out.rglob("*.wav")))


def test_a_manifests_label_the_model_lacks_or_a_missing_column_is_one_line(held_out, tmp_path):  # noqa: F811
    manifest = manifest_of(held_out, tmp_path / "test.csv", relative=False)
    unknown = r"label '(high|low|noise)' \(its `label` column\) is not one of the model's"
    with pytest.raises(HeldOutError, match=unknown):
        labelled_clips(manifest, {"yes", "no"})
    (tmp_path / "paths.csv").write_text("file,label\nx.wav,low\n")
    with pytest.raises(HeldOutError, match=r"^--eval_dir: .*paths.csv: no 'path' column"):
        labelled_clips(tmp_path / "paths.csv", {"low"})


def test_the_int8_gate_measures_on_a_manifest(trained_cnn, held_out, tmp_path):  # noqa: F811
    manifest = manifest_of(held_out, held_out.parent / "held_out.csv")
    out = tmp_path / "onnx"
    assert cli(["export", str(trained_cnn), "--quantize", "int8", "--eval_dir", str(manifest), "--output",
                str(out)]) == 0
    record = json.loads((out / "int8_check.json").read_text())
    assert record["num_clips"] == len(list(held_out.rglob("*.wav"))) and record["eval_dir"] == "held_out.csv"


def test_a_linked_manifest_is_read_from_its_targets_folder(held_out, tmp_path):  # noqa: F811
    """As training reads one (reviewer R4): the rows of `link.csv -> data/test.csv` were looked for beside the link."""
    labels = {path.name for path in held_out.iterdir() if path.is_dir()}
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "link.csv").symlink_to(manifest_of(held_out, held_out.parent / "linked.csv"))
    assert sorted(zip(*labelled_clips(tmp_path / "elsewhere" / "link.csv", labels))) == \
        sorted(zip(*labelled_clips(held_out, labels)))

