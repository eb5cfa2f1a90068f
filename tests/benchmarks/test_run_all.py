"""run_all.run's order of measurements and what it writes, every measurement replaced by a fake
that records its call and returns rows of the saved full run (report_fixtures/full.json)."""
import json
import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import common, run_all, targets  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_fixtures",
                       "full.json")

# What a full run measures, in order, with the hf_torch worker available.
FULL_RUN_CALLS = (
    ["peak float32", "peak mixed_bfloat16", "assets", "hf worker"]
    + [f"compare {task} {size} {precision}{' +torch' if task == 'classification' else ''}"
       for size in ("mini", "wide") for precision in common.PRECISIONS
       for task in ("classification", "mlm")]
    + ["hf worker closed", "measure tfmodels spe=8", "measure keras_hub xla",
       "peak float32", "peak mixed_bfloat16", "pipeline classification", "pipeline mlm",
       "tokenizer", "review lengths", "batching fixed", "batching dynamic", "batching buckets",
       "dropout", "threads 0/0", "threads 1/0", "threads 0/1", "threads 1/1", "pooling", "length parts", "side by side", "mlp",
       "serving",
       "memory base", "recompute base"])
RECOMPUTE = os.path.join(os.path.dirname(FIXTURE), "recompute.json")  # a measured run


def _saved_recompute():
    with open(RECOMPUTE, encoding="utf-8") as f:
        return json.load(f)


def _fake_measurements(monkeypatch, saved, calls):
    """Replaces every measurement run_all makes with a fake returning `saved`'s figures."""
    from benchmarks import (hf_torch, memory, mlp, peak, pipeline, recompute, serving, side_by_side, speed,
                            training)
    import tfmodels.data

    def record(name, value):
        calls.append(name)
        return value

    peaks = {p["precision"]: p for p in saved["peak"]}
    rows = saved["training"]

    def compare_training(task, size, precision, torch_worker=None, **_):
        keys = dict(task=task, size=size.name, precision=precision)
        frameworks = ("tfmodels", "keras_hub") + (("hf_torch",) if torch_worker else ())
        return record(f"compare {task} {size.name} {precision}{' +torch' if torch_worker else ''}",
                      [targets.find(rows, framework=f, steps_per_execution=1, jit_compile=False,
                                    **keys) for f in frameworks])

    def measure_training(framework, task, size, precision, steps_per_execution=1,
                         jit_compile=False, **_):
        name = "spe=8" if steps_per_execution == 8 else "xla"
        return record(f"measure {framework} {name}", targets.find(
            rows, framework=framework, steps_per_execution=steps_per_execution,
            jit_compile=jit_compile, task=task, size=size.name, precision=precision))

    class FakeWorker:
        def __init__(self):
            calls.append("hf worker")

        def close(self):
            calls.append("hf worker closed")

    assets = types.SimpleNamespace(vocabulary_size=saved["vocabulary_size"], vocab_path="v.txt")
    by_kind = {row["pipeline"]: row for row in saved["pipeline"]}
    by_mode = {row["mode"]: row for row in saved["batching"]}
    threads = {(row["inter_op"], row["intra_op"]): row for row in saved["threads"]}
    fakes = [
        (peak, "measure_matmul_peak", lambda p, repeats: record(f"peak {p}", peaks[p])),
        (pipeline, "prepare_text_assets", lambda *a, **k: record("assets", assets)),
        (hf_torch, "available", lambda: True), (hf_torch, "HFWorker", FakeWorker),
        (training, "compare_training", compare_training),
        (training, "measure_training", measure_training),
        (pipeline, "measure_pipeline",
         lambda kind, *a, **k: record(f"pipeline {kind}", by_kind[kind])),
        (tfmodels.data, "make_tokenizer", lambda path: record("tokenizer", None)),
        (speed, "review_length_stats",
         lambda *a: record("review lengths", saved["review_lengths"])),
        (speed, "measure_batching",
         lambda assets, mode, **k: record(f"batching {mode}", by_mode[mode])),
        (speed, "measure_dropout", lambda *a, **k: record("dropout", saved["dropout"])),
        (speed, "measure_pooling", lambda *a, **k: record("pooling", saved.get("pooling", []))),
        (speed, "measure_length_parts", lambda *a, **k: record("length parts", saved.get("length_parts", []))),
        (side_by_side, "measure_side_by_side",
         lambda vocab_path, **k: record("side by side", saved.get("side_by_side"))),
        (speed, "measure_threads",
         lambda inter, intra, *a, **k: record(f"threads {inter}/{intra}", threads[inter, intra])),
        (mlp, "measure_mlp", lambda **k: record("mlp", saved["mlp"])),
        (serving, "measure_serving", lambda *a, **k: record("serving", saved["serving"])),
        (memory, "measure_peak_rss",
         lambda variant, **k: record(f"memory {variant}", saved["memory"])),
        (recompute, "compare", lambda variant="base", **k: record(f"recompute {variant}", _saved_recompute())),
        (common, "machine_info", lambda: dict(saved["machine"])),
        (common, "versions", lambda: saved["versions"]),
    ]
    for module, name, fake in fakes:
        monkeypatch.setattr(module, name, fake)


def test_run_measures_in_order_and_writes_report_and_json(monkeypatch, tmp_path, capsys):
    with open(FIXTURE, encoding="utf-8") as f:
        saved = json.load(f)
    calls = []
    _fake_measurements(monkeypatch, saved, calls)
    output, json_path = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    results = run_all.run(output=str(output), json_path=str(json_path), workdir=str(tmp_path))
    assert calls == FULL_RUN_CALLS
    assert set(saved) - set(results) == set()
    for key in ("training", "pipeline", "batching", "dropout", "threads", "serving", "memory"):
        assert results[key] == saved[key], key
    assert [c["status"] for c in results["targets"]] == [c["status"] for c in saved["targets"]]
    report = output.read_text(encoding="utf-8")
    assert "| Trainer bf16 / transformers+torch bf16 tokens/s | classification, mini" in report
    assert "## Activation recomputation" in report and "0.41× (goal ≤ 0.5×: **PASS**)" in report
    assert json.loads(json_path.read_text(encoding="utf-8"))["training"] == saved["training"]
    assert "PASS  MFU at L4/H768 bf16 (classification): 0.848 (goal >= 0.5)" in (
        capsys.readouterr().out)


def test_quick_run_without_torch_leaves_out_the_speed_knobs(monkeypatch, tmp_path):
    with open(FIXTURE, encoding="utf-8") as f:
        saved = json.load(f)
    calls = []
    _fake_measurements(monkeypatch, saved, calls)
    results = run_all.run(quick=True, output=None, skip_hf=True, workdir=str(tmp_path))
    assert results["hf_message"] == "skipped: --skip_hf"
    assert "hf worker" not in calls and "dropout" not in calls
    assert calls[3:5] == ["compare classification mini mixed_bfloat16",
                          "compare mlm mini mixed_bfloat16"]
    assert calls[-4:] == ["mlp", "serving", "memory mini", "recompute mini"]
    assert not any(name.startswith(("measure ", "threads")) for name in calls)
    assert "dropout" not in results and "threads" not in results and "pooling" not in results
    assert "length_parts" not in results and "side_by_side" not in results
