"""An output moved into a mount point entry by entry (`output_staging._moved_in_entry_by_entry`): the hidden
copies it makes first are its own run's (a token from its scratch folder), a killed run's are removed by the next
move, and an earlier entry that cannot be deleted no longer throws the new output away."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from hfspeech.models.fingerprint import TRACED_FROM
from tests.test_interrupts28 import random_cnn  # noqa: F401 (fixture)
from tests.test_move_in29 import busy_mount_point, snapshot

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")


def test_a_killed_runs_hidden_copies_are_removed_and_a_live_runs_kept(random_cnn, tmp_path, monkeypatch):
    """A run killed while copying in left `.model.torchscript.pt.hfspeech-new` (as big as the model) for good: only
    copies of the same names were removed, and a later export of other files kept it as a file of the user's.
    A run still writing (its scratch folder is there) keeps its copies: they were another run's to delete."""
    from hfspeech.export import export_torchscript

    mount = tmp_path / "mount"
    export_torchscript(random_cnn, mount)
    dead = mount / ".model.onnx.hfspeech-new-deadrun0"
    live = mount / ".config.json.hfspeech-new-liverun0"
    dead.write_bytes(b"half a model")
    live.write_bytes(b"another run's")
    (tmp_path / ".mount-partial-liverun0").mkdir()  # the live run's scratch folder (locked: not swept)
    busy_mount_point(monkeypatch, mount)
    held = os.open(tmp_path / ".mount-partial-liverun0", os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        export_torchscript(random_cnn, mount)
    finally:
        os.close(held)
    assert not dead.exists() and live.read_bytes() == b"another run's"


def test_an_earlier_entry_that_cannot_be_deleted_keeps_the_new_output(random_cnn, tmp_path, monkeypatch):
    """The earlier model went first, then a file that could not be deleted stopped the move, and the new copies
    were thrown away: neither output was left. Now the new output goes in and the error is still raised."""
    from hfspeech.export import export_torchscript

    mount = tmp_path / "mount"
    export_torchscript(random_cnn, mount)
    (mount / "model.onnx").write_bytes(b"onnx")  # the earlier export's, which this one replaces, undeletable
    (mount / TRACED_FROM).write_text("{}")  # the earlier export's record, to tell the outputs apart
    new = tmp_path / "new"
    export_torchscript(random_cnn, new)
    real_unlink = Path.unlink

    def refused(path, *args, **kwargs):
        if path.parent == mount and path.name.startswith(".model.onnx.hfspeech-old-"):  # set aside, then deleted
            raise PermissionError(13, "Permission denied", str(path))
        return real_unlink(path, *args, **kwargs)

    busy_mount_point(monkeypatch, mount)
    monkeypatch.setattr(Path, "unlink", refused)
    with pytest.raises(Exception, match="Permission denied"):
        export_torchscript(random_cnn, mount)
    got, expected = snapshot(mount), {**snapshot(new), "model.onnx": b"onnx"}
    assert set(got) == set(expected) and got[TRACED_FROM] == expected[TRACED_FROM] != b"{}"
