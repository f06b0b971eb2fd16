"""`--config_overrides` holding a value a flag or the data sets (session 41, audit DR1): `{"sampling_rate": 8000}`
ended on "CNNAudioConfig() got multiple values for keyword argument 'sampling_rate'", and
`{"max_length_seconds": 1}` on "did you mean ['max_length']?" (a generation setting of transformers'). Now one line
names the flag to use."""

from __future__ import annotations

import pytest

from conftest import run_cli_output, write_tone_folder


@pytest.mark.parametrize("override, expected", [
    ('{"sampling_rate": 8000}', "'sampling_rate' is set by --sampling_rate: give it there"),
    ('{"max_length_seconds": 1}', "'max_length_seconds' is set by --max_length_seconds: give it there"),
    ('{"id2label": {"0": "a"}}', "'id2label' comes from the data's labels"),
])
def test_a_value_a_flag_or_the_data_sets_is_refused_naming_it(override, expected, tmp_path, capsys):
    data = write_tone_folder(tmp_path / "data", clips_per_class=2, rates=(16000,))
    code, _, err = run_cli_output(["train", "--data_dir", str(data), "--output_dir", str(tmp_path / "run"),
                                   "--config_overrides", override, "--num_train_epochs", "1"], capsys)
    assert code == 2 and f"error: --config_overrides: {expected}" in err, err
    assert "Traceback" not in err and "did you mean" not in err
