"""The recomputation benchmark's protocol (budget, batch search) and its BENCHMARKS.md section."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import recompute, report  # noqa: E402

BUILT = 1000.0
PER_EXAMPLE = {"none": 500.0, "layers": 100.0}  # MiB of activations per example


def _fake_measure(recompute_mode, batch_size, *, variant, sequence_length, precision, warmup,
                  timed_steps):
    activation = 50.0 + PER_EXAMPLE[recompute_mode] * batch_size
    step = batch_size * (1.3 if recompute_mode == "layers" else 1.0)
    return {"recompute": recompute_mode, "batch_size": batch_size, "variant": variant,
            "sequence_length": sequence_length, "precision": precision, "parameters": 10,
            "rss_built_mib": BUILT, "peak_rss_mib": BUILT + activation,
            "activation_mib": activation, "median_step_s": step,
            "step_times_s": [step] * timed_steps, "load_average": [1.0, 1.0, 1.0]}


def test_compare_sets_the_budget_and_finds_the_largest_batch(monkeypatch):
    monkeypatch.setattr(recompute, "measure", _fake_measure)
    result = recompute.compare(4, variant="tiny", sequence_length=16, precision="float32",
                               log=lambda line: None)
    # Budget: 1000 + 50 + 4 * 500 = 3050 MiB; with recomputation 1050 + 100 B <= 3050 -> B = 20.
    assert result["budget_mib"] == 3050.0
    assert result["activation_ratio"] == pytest.approx(450.0 / 2050.0)
    assert result["step_time_ratio"] == pytest.approx(1.3)
    assert result["predicted_largest_batch"] == 20
    assert result["largest_batch"] == {"none": 4, "layers": 20}
    assert [(run["recompute"], run["batch_size"]) for run in result["runs"]] == [
        ("none", 4), ("layers", 4), ("layers", 16), ("layers", 20), ("layers", 21)]
    assert result["runs"][-1]["peak_rss_mib"] > result["budget_mib"]


def test_batch_search_predicts_again_after_a_run_over_budget_then_steps_up():
    # Peaks grow 10 MiB per example up to 8 and 20 above: the first guess (16) is over the
    # budget, the second (from the anchor and that run) is 8, which fits; 9 and 10 fit too, 11 not.
    anchor = {"batch_size": 4, "peak_rss_mib": 50.0}
    peak = lambda batch: 50.0 + 10.0 * (batch - 4) + (10.0 * (batch - 8) if batch > 8 else 0.0)
    rows = []
    fitted = recompute._largest_batch_in_budget(
        rows, 130.0, anchor, start=16, max_tries=4,
        run=lambda batch: {"batch_size": batch, "peak_rss_mib": peak(batch)})
    assert [row["batch_size"] for row in rows] == [16, 8, 9, 10, 11]
    assert fitted == 10
    rows = []
    assert recompute._largest_batch_in_budget(
        rows, 1.0, anchor, 5, 2, run=lambda b: {"batch_size": b, "error": "x"}) is None
    assert [row["batch_size"] for row in rows] == [5, 4]


def test_section_renders_and_replaces_only_its_own_part(monkeypatch, tmp_path):
    monkeypatch.setattr(recompute, "measure", _fake_measure)
    result = recompute.compare(4, variant="tiny", sequence_length=16, precision="float32",
                               log=lambda line: None)
    section = report.recompute_section(result)
    assert section.startswith(recompute.SECTION_HEADING)
    assert "0.22× (goal ≤ 0.5×: **PASS**)" in section
    assert "1.30× (goal ≤ 1.4×: **PASS**)" in section
    assert ("trains is **4** without recomputation and **20** with it; the next larger batch "
            "with it exceeds the budget (last row)") in section
    assert "| layers | 21 × 16 | 3,150 | 1,000 | 2,150 | 27.3 | 1 (1.0) |" in section
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Peak memory\n\nold\n\n## Formulas\n\nf\n")
    report.replace_section(str(path), recompute.SECTION_HEADING, section)
    report.replace_section(str(path), recompute.SECTION_HEADING, section)  # replaced, not doubled
    text = path.read_text()
    assert text.count(recompute.SECTION_HEADING) == 1
    assert text.startswith("# Benchmarks\n\n## Peak memory\n\nold\n\n## Formulas\n\nf\n\n## Activation")


@pytest.mark.slow
def test_measure_runs_a_child_process():
    row = recompute.measure("layers", 2, variant="tiny", sequence_length=16, warmup=1,
                            timed_steps=2, precision="float32")
    assert "error" not in row, row
    assert row["peak_rss_mib"] >= row["rss_built_mib"] > 0
    assert len(row["step_times_s"]) == 2 and row["parameters"] > 0


def test_without_search_the_section_has_no_largest_batch(monkeypatch):
    monkeypatch.setattr(recompute, "measure", _fake_measure)
    result = recompute.compare(2, variant="mini", sequence_length=16, precision="float32",
                               search=False, log=lambda line: None)
    assert len(result["runs"]) == 2 and "largest_batch" not in result
    section = report.recompute_section(result)
    assert "step time 1.30×" in section and "largest batch" not in section
