"""A deterministic tiny run of each objective reproduces the weights and logs recorded before the
Trainer was split by concern (tests/training/golden_runs.py writes the record)."""
import json

import numpy as np
import pytest

from tests.training import golden_runs


@pytest.mark.parametrize("objective", sorted(golden_runs.RUNS))
def test_deterministic_run_matches_the_recorded_one(objective, tmp_path):
    with open(golden_runs.RECORD, encoding="utf-8") as f:
        expected = json.load(f)[objective]
    actual = golden_runs.RUNS[objective](str(tmp_path))
    assert sorted(actual["variables"]) == sorted(expected["variables"])
    for path, (total, squares, first) in expected["variables"].items():
        got_total, got_squares, got_first = actual["variables"][path]
        # oneDNN picks kernels per CPU, so sums agree to rounding, not bit for bit.
        np.testing.assert_allclose([got_total, got_squares], [total, squares], rtol=1e-4, atol=1e-4,
                                   err_msg=path)
        np.testing.assert_allclose(got_first, first, rtol=1e-4, atol=1e-5, err_msg=path)
    assert sorted(actual["logs"]) == sorted(expected["logs"])
    for key, value in expected["logs"].items():
        assert actual["logs"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
