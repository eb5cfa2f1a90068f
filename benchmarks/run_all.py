"""Runs every benchmark in one run and rewrites BENCHMARKS.md.

Usage:
    python -m benchmarks.run_all            # full run (~25 minutes on 2 idle cores, ~25 more
                                            # for the activation-recomputation batch search)
    python -m benchmarks.run_all --quick    # smoke run: mini only, few steps
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from benchmarks import common  # noqa: E402

# Imported by `run` before it starts the clock.
MEASURING_MODULES = ("hf_torch", "memory", "mlp", "peak", "pipeline", "recompute", "report", "serving",
                     "side_by_side", "speed", "targets")


def _settings(quick):
    if quick:
        return {"sizes": ["mini"], "precisions": ["mixed_bfloat16"], "warmup": 2,
                "timed_steps": 5, "rounds": 2, "steps_per_round": 3, "wide_warmup": 2,
                "wide_rounds": 2, "wide_steps_per_round": 2,
                "pipeline_batches": 50, "latency_calls": 5, "throughput_batches": 4,
                "mlp_steps": 30, "memory_variant": "mini", "memory_steps": 1,
                "padding_steps": 4, "vocab_texts": 2000, "speed_knobs": False,
                "hf_precisions": ["mixed_bfloat16"],
                "recompute": {"variant": "mini", "sequence_length": 128, "batch_size": 2,
                              "search": False},
                "sequence_length": common.SEQUENCE_LENGTH, "batch_size": common.BATCH_SIZE}
    # Step counts sized so that the run takes about 25 minutes on 2 idle cores with bf16
    # instructions (and under an hour on a shared, loaded one, or without bf16 instructions,
    # where bf16 steps are ~3x slower). Training comparisons time rounds x (steps_per_round - 1)
    # steps per side: 12 for mini, 8 for wide.
    return {"sizes": ["mini", "wide"], "precisions": list(common.PRECISIONS), "warmup": 3,
            "timed_steps": 12, "rounds": 4, "steps_per_round": 4, "wide_warmup": 2,
            "wide_rounds": 4, "wide_steps_per_round": 3,
            "pipeline_batches": 300, "latency_calls": 100, "throughput_batches": 20,
            "mlp_steps": 200, "memory_variant": "base", "memory_steps": 2,
            "padding_steps": 12, "vocab_texts": None, "speed_knobs": True,
            "hf_precisions": list(common.PRECISIONS),
            "recompute": {"variant": "base", "sequence_length": 512, "batch_size": 4},
            "side_by_side": {"steps": 20, "rounds": 4},
            "sequence_length": common.SEQUENCE_LENGTH, "batch_size": common.BATCH_SIZE}


def _log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _mfu_peaks(results):
    """Per precision, the higher of the run's two best `tf.matmul` figures (GFLOP/s).

    The load of a shared machine changes during the run, so a peak taken under heavier load
    must not inflate MFU. No bf16 peak where the CPU has no bf16 instructions: an emulated
    matmul is no ceiling (training steps beat it), so bf16 MFU is left out there.
    """
    peaks = {}
    for measured in results.get("peak", []) + results.get("peak_end", []):
        precision = measured["precision"]
        peaks[precision] = max(peaks.get(precision, 0.0), measured["best_gflops"])
    if not common.has_bf16_instructions(results["machine"]["cpu_flags"]):
        peaks.pop("mixed_bfloat16", None)
    return peaks


def add_mfu(results):
    """Sets `mfu` (model FLOPs/s ÷ peak, or None) on every training row of `results`."""
    peaks = _mfu_peaks(results)
    for row in results["training"]:
        if "error" not in row:
            peak = peaks.get(row["precision"])
            row["mfu"] = (row["flops_per_s"] / (peak * 1e9)
                          if peak and row.get("flops_per_s") else None)


def run_training(settings, vocabulary_size, hf_worker, rows):
    """Training table: per size/precision/task, tfmodels, keras-hub and HF interleaved."""
    from benchmarks import hf_torch, training

    for size_name in settings["sizes"]:
        size = common.SIZES[size_name]
        prefix = "wide_" if size_name == "wide" else ""
        for precision in settings["precisions"]:
            for task in training.TASKS:
                with_torch = (task == "classification" and hf_worker is not None
                              and precision in settings["hf_precisions"])
                _log(f"training {task} {size_name} {precision}: tfmodels, keras_hub"
                     + (", hf_torch" if with_torch else "") + " interleaved")
                measure = dict(task=task, size=size, precision=precision,
                               vocabulary_size=vocabulary_size,
                               batch_size=settings["batch_size"],
                               sequence_length=settings["sequence_length"],
                               warmup=settings[prefix + "warmup"],
                               rounds=settings[prefix + "rounds"],
                               steps_per_round=settings[prefix + "steps_per_round"])
                try:
                    measured = training.compare_training(
                        torch_worker=hf_worker if with_torch else None, **measure)
                except hf_torch.WorkerError as error:
                    _log(f"hf_torch failed ({error}); measuring without it")
                    rows.append({"framework": "hf_torch", "task": task, "size": size_name,
                                 "precision": precision, "error": str(error)})
                    measured = training.compare_training(**measure)
                rows.extend(measured)


def run_speed_knobs(settings, vocabulary_size, rows):
    """steps_per_execution 8 (Trainer) and XLA (keras-hub fit) on BERT-mini bf16."""
    from benchmarks import training

    size = common.SIZES["mini"]
    timed = max(settings["timed_steps"], 24)
    _log("training tfmodels classification mini bf16 steps_per_execution=8")
    rows.append(training.measure_training(
        "tfmodels", "classification", size, "mixed_bfloat16", vocabulary_size=vocabulary_size,
        warmup=2, timed_steps=timed, steps_per_execution=8))
    _log("training keras_hub classification mini bf16 jit_compile=True")
    rows.append(training.measure_training(
        "keras_hub", "classification", size, "mixed_bfloat16", vocabulary_size=vocabulary_size,
        warmup=settings["warmup"], timed_steps=settings["timed_steps"], jit_compile=True))


def _open_hf_worker(results, skip_hf):
    """The transformers + torch worker process, or None (the reason goes to hf_message)."""
    from benchmarks import hf_torch

    if skip_hf:
        results["hf_message"] = "skipped: --skip_hf"
    elif not hf_torch.available():
        results["hf_message"] = hf_torch.MISSING_MESSAGE
        _log(hf_torch.MISSING_MESSAGE)
    else:
        return hf_torch.HFWorker()
    return None


def _measure_peak(quick):
    from benchmarks import peak

    return [peak.measure_matmul_peak(p, repeats=10 if quick else 30) for p in common.PRECISIONS]


def _measure_training_table(results, settings, assets, skip_hf):
    """The training rows (comparisons, then the speed knobs), the matmul peak again, MFU."""
    hf_worker = _open_hf_worker(results, skip_hf)
    rows = results["training"] = []
    try:
        run_training(settings, assets.vocabulary_size, hf_worker, rows)
    finally:
        if hf_worker is not None:
            hf_worker.close()
    if settings["speed_knobs"]:
        run_speed_knobs(settings, assets.vocabulary_size, rows)
    _log("matmul peak (again, after training; see _mfu_peaks)")
    results["peak_end"] = _measure_peak(results["quick"])
    add_mfu(results)


def _measure_input(results, settings, assets):
    """Input pipelines alone, and Trainer throughput per batching of the real reviews."""
    from benchmarks import pipeline, speed

    _log("input pipelines")
    results["pipeline"] = [pipeline.measure_pipeline(kind, assets,
                                                     timed_batches=settings["pipeline_batches"])
                           for kind in ("classification", "mlm")]
    _log("batching of the real reviews: fixed, dynamic padding, length buckets")
    from tfmodels.data import make_tokenizer
    results["review_lengths"] = speed.review_length_stats(assets, make_tokenizer(
        assets.vocab_path))
    results["batching"] = [speed.measure_batching(assets, mode, warmup=settings["warmup"],
                                                  timed_steps=settings["padding_steps"])
                           for mode in speed.BATCHING_MODES]


def _measure_demo_classifier(results, settings, assets):
    """The demo classifier's poolings (mean vs max + mean) and length-sorted parts on the real
    reviews, each interleaved; its two fine-tuning runs side by side against one after the other."""
    from benchmarks import side_by_side, speed

    _log("classifier pooling on the demo's encoder: mean vs max + mean (interleaved)")
    results["pooling"] = speed.measure_pooling(
        assets, warmup=settings["warmup"], rounds=settings["rounds"],
        steps_per_round=settings["steps_per_round"])
    _log("length-sorted parts on the demo's classifier: 1, 2 and 4 parts (interleaved)")
    results["length_parts"] = speed.measure_length_parts(
        assets, warmup=settings["warmup"], rounds=settings["rounds"],
        steps_per_round=settings["steps_per_round"])
    _log("the demo's two fine-tuning runs side by side vs one after the other (child processes)")
    results["side_by_side"] = side_by_side.measure_side_by_side(assets.vocab_path,
                                                                **settings["side_by_side"])


def _measure_dropout_and_threads(results, settings, vocabulary_size):
    """Dropout masks (Keras vs keep_mask, interleaved) and thread-pool sizes."""
    from benchmarks import speed

    _log("dropout masks: Keras vs keep_mask (interleaved)")
    results["dropout"] = speed.measure_dropout(
        vocabulary_size, warmup=settings["warmup"], rounds=settings["rounds"],
        steps_per_round=settings["steps_per_round"])
    _log("thread-pool sizes (child processes)")
    results["threads"] = [speed.measure_threads(inter, intra, vocabulary_size,
                                                warmup=settings["warmup"],
                                                timed_steps=settings["timed_steps"])
                          for inter, intra in speed.THREAD_SETTINGS]


def _measure_mlp_serving_memory(results, settings, assets, workdir):
    """MLP training, serving latency and throughput, peak memory of fine-tuning."""
    from benchmarks import memory, mlp, recompute, serving

    _log("MLP")
    results["mlp"] = mlp.measure_mlp(timed_steps=settings["mlp_steps"])
    _log("serving")
    results["serving"] = serving.measure_serving(
        assets, workdir, latency_calls=settings["latency_calls"],
        throughput_batches=settings["throughput_batches"])
    _log(f"peak memory ({settings['memory_variant']}, child process)")
    results["memory"] = memory.measure_peak_rss(settings["memory_variant"],
                                                steps=settings["memory_steps"])
    _log("activation recomputation (child processes)")
    results["recompute"] = recompute.compare(**settings["recompute"], log=_log)


def _write_outputs(results, checks, output, json_path):
    """Writes the report (`output`) and the raw results (`json_path`), each if given, and
    prints every target's status."""
    from benchmarks import report

    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(report.render(results, checks))
        _log(f"wrote {output}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, default=str)
    for check in checks:
        print(f"{check['status']:5s} {check['target']} ({check['detail']}): "
              f"{check['measured'] if check['measured'] is None else round(check['measured'], 3)}"
              f" (goal >= {check['goal']})", flush=True)


def run(quick=False, output="BENCHMARKS.md", skip_hf=False, json_path=None, workdir=None):
    """Runs all benchmarks, writes `output`, returns the results dict.

    Args:
        quick: bool. Smoke sizes. Defaults to False.
        output: str or None. Markdown file to rewrite; None writes nothing. Defaults to
            "BENCHMARKS.md".
        skip_hf: bool. Leave out the Hugging Face/PyTorch comparison. Defaults to False.
        json_path: str or None. Also write the raw results as JSON.
        workdir: str or None. Scratch directory (vocab, exports); a temporary one by default.
    """
    for module in MEASURING_MODULES:  # loading TensorFlow is not part of the run's time
        importlib.import_module("benchmarks." + module)
    from benchmarks import pipeline, targets

    started = time.perf_counter()
    cpu_start = common.cpu_times()
    settings = _settings(quick)
    results = {"quick": quick, "settings": settings, "machine": common.machine_info(),
               "versions": common.versions(),
               "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}
    _log(f"start; load average {results['machine']['load_average']}")
    workdir = workdir or tempfile.mkdtemp(prefix="tfmodels_bench_")
    _log("matmul peak")
    results["peak"] = _measure_peak(quick)
    _log("text assets (embedded data, vocabulary)")
    assets = pipeline.prepare_text_assets(workdir, max_vocab_texts=settings["vocab_texts"])
    results["vocabulary_size"] = assets.vocabulary_size

    _measure_training_table(results, settings, assets, skip_hf)
    _measure_input(results, settings, assets)
    if settings["speed_knobs"]:
        _measure_dropout_and_threads(results, settings, assets.vocabulary_size)
        _measure_demo_classifier(results, settings, assets)
    _measure_mlp_serving_memory(results, settings, assets, workdir)

    results["machine_end"] = common.machine_info()
    results["cpu_use"] = common.cpu_use_between(cpu_start, common.cpu_times(),
                                                results["machine"]["cores"] or 1)
    results["duration_s"] = time.perf_counter() - started
    checks = results["targets"] = targets.evaluate_targets(results)
    _write_outputs(results, checks, output, json_path)
    _log(f"done in {results['duration_s'] / 60:.1f} min")
    return results


def render_from(json_path, output):
    """Rewrites `output` from the raw results of an earlier run (no measurement)."""
    from benchmarks import report, targets

    with open(json_path, encoding="utf-8") as f:
        results = json.load(f)
    add_mfu(results)
    checks = targets.evaluate_targets(results)
    with open(output, "w", encoding="utf-8") as f:
        f.write(report.render(results, checks))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run all tfmodels benchmarks, rewrite BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny step counts")
    parser.add_argument("--output", default="BENCHMARKS.md", help="markdown file to rewrite")
    parser.add_argument("--json", dest="json_path", default=None, help="also write raw JSON")
    parser.add_argument("--skip_hf", action="store_true", help="leave out transformers/torch")
    parser.add_argument("--render_from", default=None,
                        help="only re-render --output from a JSON file written by --json")
    args = parser.parse_args(argv)
    if args.render_from:
        render_from(args.render_from, args.output)
        return 0
    run(quick=args.quick, output=args.output, skip_hf=args.skip_hf, json_path=args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
