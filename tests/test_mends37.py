"""Session 37's small mends: each test failed before its mend."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from tests.conftest import save_random_baseline
from tests.test_permissions36 import as_another_user, hfspeech_code


def test_an_unreadable_config_is_named_plainly_not_as_a_raw_errno_line(tmp_path):
    """predict's user-error wrapper turned a PermissionError into `error: [Errno 13] Permission denied:
    'mdl/config.json'`; main's access refusal names the file and the way out, as for every other command."""
    save_random_baseline(tmp_path / "mdl", "cnn", ["a", "b"], 0.02)
    sf.write(tmp_path / "a.wav", np.zeros(8000, dtype="float32"), 16000)
    (tmp_path / "mdl" / "config.json").chmod(0)
    try:
        done = as_another_user(hfspeech_code("predict", "mdl", "a.wav"), cwd=tmp_path)
    finally:
        (tmp_path / "mdl" / "config.json").chmod(0o644)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: mdl/config.json: Permission denied; give this user access to it (and to the folders above it), "
        "or use another path")
