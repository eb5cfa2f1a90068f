"""BENCHMARKS.md rendering is pinned byte for byte on saved results of three kinds of run.

report_fixtures/*.json are `run_all --json` results (a full run on a CPU with AVX512-BF16 where every
target passed; the full run of 2026-12-06 in BENCHMARKS.md, on a CPU with AMX, with the pooling,
length-parts and side-by-side lines and two targets missed; a loaded CPU without bf16 instructions
with a failed torch side and thread run; a `--quick --skip_hf` run whose memory child failed);
*.md is what the report made of them.
After an intended change to the report, re-render each golden file from the repository root,
    python -m benchmarks.run_all --render_from tests/benchmarks/report_fixtures/NAME.json
        --output tests/benchmarks/report_fixtures/NAME.md
and review the diff.
"""
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import report, run_all, targets  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_fixtures")


@pytest.mark.parametrize("name", ["full", "full_amx", "no_bf16", "quick"])
def test_render_from_matches_the_golden_file(name, tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    run_all.render_from(os.path.join(FIXTURES, name + ".json"), str(output))
    with open(os.path.join(FIXTURES, name + ".md"), encoding="utf-8") as f:
        golden = f.read()
    assert output.read_text(encoding="utf-8") == golden


def test_protocol_of_results_from_before_interleaving():
    settings = {"warmup": 3, "timed_steps": 12, "wide_warmup": 2, "wide_timed_steps": 8}
    assert report._protocol(settings) == (
        "3 warm-up calls then 12 timed steps per measurement (2 + 8 for the wide model), each "
        "side measured after the other.")


def test_a_section_is_a_template_block_and_an_entry_in_sections(monkeypatch):
    sections, phrases = report._template()
    monkeypatch.setattr(report, "_template", lambda: (
        {**sections, "extra": "## Extra\n\n{extra}\n\n"}, phrases))
    speed = [name for name, _ in report.SECTIONS].index("speed")

    def extra(results, checks):  # left out of runs that did not measure it
        return {"extra": results["extra"]} if "extra" in results else None

    monkeypatch.setattr(report, "SECTIONS", report.SECTIONS[:speed] + (("extra", extra),)
                        + report.SECTIONS[speed:])
    with open(os.path.join(FIXTURES, "full.json"), encoding="utf-8") as f:
        results = json.load(f)
    with open(os.path.join(FIXTURES, "full.md"), encoding="utf-8") as f:
        golden = f.read()
    checks = targets.evaluate_targets(results)
    assert report.render(results, checks) == golden
    results["extra"] = "figures"
    assert report.render(results, checks) == golden.replace(
        "\n## Speed work\n", "\n## Extra\n\nfigures\n\n## Speed work\n")
