"""benchmarks/side_by_side.py: both arrangements train the same batches, the rounds' ratios make the
figure, a failing worker is named, and the report line reads the result."""
import os
import statistics
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import report, side_by_side  # noqa: E402
from tests.benchmarks.text_assets import text_assets  # noqa: E402


def _token_ids(dataset, batches):
    return [features["token_ids"].numpy() for features, _ in dataset.take(batches)]


def test_the_side_by_side_workers_share_out_the_lone_workers_batches(tmp_path):
    vocab = text_assets(tmp_path, 200).vocab_path
    lone, _ = side_by_side._worker_batches(vocab, first_batch=0, batches=4)
    first, _ = side_by_side._worker_batches(vocab, first_batch=0, batches=2)
    second, _ = side_by_side._worker_batches(vocab, first_batch=2, batches=2)
    lone_batches = _token_ids(lone, 8)  # twice round: the batches repeat
    shared_out = _token_ids(first, 2) + _token_ids(second, 2)
    assert all(batch.shape[0] == 32 for batch in lone_batches)
    for mine, theirs in zip(lone_batches, shared_out + shared_out):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.slow  # ~15 s: three TensorFlow processes start
def test_a_failing_worker_is_named_with_its_error(tmp_path):
    missing = str(tmp_path / "no_vocab.txt")
    with pytest.raises(side_by_side.WorkerError,
                       match=r"worker one after the other exited with status [1-9].*no_vocab"):
        side_by_side.measure_side_by_side(missing, steps=1, rounds=1)


def test_bad_settings_are_refused_before_any_worker_starts():
    with pytest.raises(ValueError, match="need steps >= 1 and rounds >= 1; got 0 and 2"):
        side_by_side.measure_side_by_side("vocab.txt", steps=0, rounds=2)


@pytest.mark.slow  # ~1 min: three TensorFlow processes train the demo's classifier
def test_both_arrangements_train_and_the_rounds_make_the_ratio(tmp_path):
    result = side_by_side.measure_side_by_side(text_assets(tmp_path, 200).vocab_path, steps=2, rounds=2, cores=2)
    assert result["threads_side_by_side"] == 1 and result["runs"] == 2
    assert len(result["after_one_another_s"]) == len(result["side_by_side_s"]) == 2
    assert result["round_ratios"] == [alone / beside for alone, beside in zip(
        result["after_one_another_s"], result["side_by_side_s"])]
    assert result["ratio"] == statistics.median(result["round_ratios"]) > 0
    assert result["steps_per_s"]["side_by_side"] == pytest.approx(
        4 / statistics.median(result["side_by_side_s"]))
    [line] = report._side_by_side_lines({"side_by_side": result})
    assert "2 processes of 1 thread(s) each (of 2 cores)" in line


def test_the_report_line_gives_the_median_ratio_and_the_rounds_spread():
    result = {"runs": 2, "steps_per_run": 20, "rounds": 3, "threads_side_by_side": 1, "cores": 2,
              "precision": "mixed_bfloat16", "after_one_another_s": [13.0, 12.0, 14.0],
              "side_by_side_s": [10.0, 10.0, 10.0], "round_ratios": [1.3, 1.2, 1.4], "ratio": 1.3,
              "steps_per_s": {"after_one_another": 40 / 13.0, "side_by_side": 4.0}}
    [line] = report._side_by_side_lines({"side_by_side": result})
    assert "training one run after the other 3.08 steps/s" in line and "at once 4.00 steps/s" in line
    assert "**1.30× as fast** (median of the rounds; per round 1.20–1.40×)" in line
    assert report._side_by_side_lines({}) == []
