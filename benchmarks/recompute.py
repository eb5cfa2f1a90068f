"""Activation recomputation: memory and step time of BERT training with and without it.

Every measurement is a fresh child process (`python -m benchmarks.recompute --child ...`)
that builds a BERT classifier, its optimizer and the Trainer as the binaries do, notes its RSS,
then trains on one fixed batch. Figures per run:

- peak RSS: the child's own high-water mark (`common.peak_rss_mib`);
- RSS after build: resident memory once the model, the optimizer (with its slots) and the
  Trainer exist, before the first step;
- activation memory: peak RSS − RSS after build. It also holds what one step needs besides
  activations (gradients, the traced step, the optimizer's temporaries), the same with and
  without recomputation;
- step time: median of the timed steps after the warm-up step(s).

Protocol (`compare`): without and with recomputation at the same batch; the memory budget is
the peak RSS without recomputation at that batch (so that batch is the largest that trains
without it in the budget); the largest batch that trains with recomputation in the budget is
predicted from the per-example growth of peak RSS between the batch and four times it, then
measured: a run over the budget predicts again from its own peak, and once one fits, larger
batches are run until one exceeds the budget.

Usage:
    python -m benchmarks.recompute --json recompute.json --write BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks import common

SECTION_HEADING = "## Activation recomputation"


def _train(args) -> dict:
    from benchmarks import training
    from tfmodels.models import build_bert_classifier, build_bert_encoder, set_recompute
    from tfmodels.training import Trainer, apply_precision, get_strategy

    apply_precision(args.precision)
    strategy = get_strategy("auto")
    with strategy.scope():
        encoder = build_bert_encoder(args.variant, vocabulary_size=args.vocabulary_size,
                                     max_sequence_length=max(512, args.sequence_length))
        model = build_bert_classifier(encoder, common.NUM_CLASSES, pooling=args.pooling)
        optimizer = training.tfmodels_optimizer(training.PLANNED_STEPS)
    set_recompute(model, args.recompute)
    trainer = Trainer(model, optimizer, strategy=strategy, best_metric=None, seed=0, verbose=0)
    batch = training.synthetic_batch("classification", args.batch_size, args.sequence_length,
                                     args.vocabulary_size)
    built = common.rss_mib()
    timer = training.make_step_timer()
    started = time.perf_counter()
    trainer.fit(training.repeated_dataset(batch), steps=args.warmup + args.timed_steps,
                callbacks=[timer])
    # Intervals between step ends, from the end of the last warm-up step.
    times = common.step_times(timer.events, args.warmup - 1)
    peak = common.peak_rss_mib()
    return {"parameters": int(model.count_params()), "rss_built_mib": built,
            "peak_rss_mib": peak, "activation_mib": peak - built,
            "median_step_s": common.summarize_steps(times, args.batch_size, 1.0)["median_step_s"],
            "step_times_s": times, "seconds": time.perf_counter() - started,
            "load_average": common.load_average()}


def _child_arguments(parser):
    parser.add_argument("--recompute", default="none", choices=("none", "layers"))
    parser.add_argument("--variant", default="base")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--sequence_length", type=int, default=512)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--pooling", default="mean", choices=("mean", "cls"))
    parser.add_argument("--vocabulary_size", type=int, default=21128)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--timed_steps", type=int, default=2)


def measure(recompute, batch_size, *, variant="base", sequence_length=512,
            precision="mixed_bfloat16", pooling="mean", vocabulary_size=21128, warmup=1,
            timed_steps=2, timeout=3600) -> dict:
    """Trains in a fresh child process; returns its memory and step-time figures.

    Args:
        recompute: str. "none" or "layers".
        batch_size: int. B.
        variant: str. BERT variant. Defaults to "base".
        sequence_length: int. L (every position a real token). Defaults to 512.
        precision: str. Defaults to "mixed_bfloat16".
        pooling: str. Classifier pooling; "mean" (the config default) runs every layer
            through the backbone. Defaults to "mean".
        vocabulary_size: int. Defaults to 21128 (BERT-Chinese).
        warmup: int. Untimed steps (the first traces the step). Defaults to 1.
        timed_steps: int. Defaults to 2.
        timeout: int. Seconds before the child is stopped. Defaults to 3600.

    Returns:
        dict with the arguments and peak_rss_mib, rss_built_mib, activation_mib,
        median_step_s, step_times_s; or with "error".
    """
    settings = dict(recompute=recompute, variant=variant, batch_size=batch_size,
                    sequence_length=sequence_length, precision=precision, pooling=pooling,
                    vocabulary_size=vocabulary_size, warmup=warmup, timed_steps=timed_steps)
    arguments = ["--child"] + [f"--{key}={value}" for key, value in settings.items()]
    return {**settings, **common.run_child("benchmarks.recompute", arguments, timeout)}


def _predicted_largest_batch(first, second, budget_mib) -> int:
    """The batch whose peak RSS reaches the budget, by linear growth between two runs."""
    per_example = ((second["peak_rss_mib"] - first["peak_rss_mib"])
                   / (second["batch_size"] - first["batch_size"]))
    if per_example <= 0:
        return second["batch_size"]
    return first["batch_size"] + int((budget_mib - first["peak_rss_mib"]) // per_example)


def _largest_batch_in_budget(rows, budget_mib, anchor, start, max_tries, run):
    """The largest batch whose run stays within the budget, searched from `start`.

    A run over the budget predicts the next batch from itself and `anchor` (at least one less);
    after the first run that fits, larger batches are run until one exceeds the budget.
    Returns None when no run fits within `max_tries`.
    """
    fitted, batch = None, start
    for _ in range(max_tries):
        row = run(batch)
        rows.append(row)
        if "error" not in row and row["peak_rss_mib"] <= budget_mib:
            fitted = batch
            break
        batch = batch - 1 if "error" in row else min(
            batch - 1, _predicted_largest_batch(anchor, row, budget_mib))
    for _ in range(max_tries if fitted is not None else 0):
        row = run(fitted + 1)
        rows.append(row)
        if "error" in row or row["peak_rss_mib"] > budget_mib:
            break
        fitted += 1
    return fitted


def compare(batch_size=4, *, variant="base", sequence_length=512, precision=None, warmup=1,
            timed_steps=2, search=True, max_tries=3, log=print) -> dict:
    """Without vs with recomputation, and the largest batch of each in one memory budget.

    Args:
        batch_size: int. The batch without recomputation; its peak RSS is the budget.
            Defaults to 4.
        variant: str. Defaults to "base".
        sequence_length: int. Defaults to 512.
        precision: str or None. None: what `precision: auto` picks on this CPU.
        warmup: int. Untimed steps per run. Defaults to 1.
        timed_steps: int. Timed steps of the two runs at `batch_size`. Defaults to 2.
        search: bool. Also search the largest batch with recomputation. Defaults to True.
        max_tries: int. Most runs searching down, and then up, from the predicted batch.
            Defaults to 3.
        log: callable. Progress lines. Defaults to print.

    Returns:
        dict with "runs" (rows of `measure`, the two at `batch_size` first), "budget_mib",
        "activation_ratio", "step_time_ratio" and, with `search`, "predicted_largest_batch"
        and "largest_batch" {"none", "layers"} (None where no run fitted).
    """
    precision = precision or common.auto_precision(common.cpu_flags_of_interest())
    shared = dict(variant=variant, sequence_length=sequence_length, precision=precision,
                  warmup=warmup)

    def run(recompute, batch, timed=1):
        log(f"recompute={recompute} batch {batch} × {sequence_length} ({variant}, {precision})")
        row = measure(recompute, batch, timed_steps=timed, **shared)
        log(f"  -> {row.get('error') or _row_summary(row)}")
        return row

    plain = run("none", batch_size, timed_steps)
    recomputed = run("layers", batch_size, timed_steps)
    rows = [plain, recomputed]
    result = {"runs": rows, "precision": precision, "variant": variant,
              "sequence_length": sequence_length, "batch_size": batch_size,
              "warmup": warmup, "timed_steps": timed_steps}
    if "error" in plain or "error" in recomputed:
        return result
    budget = plain["peak_rss_mib"]
    result.update(budget_mib=budget,
                  activation_ratio=common.ratio(recomputed["activation_mib"],
                                                plain["activation_mib"]),
                  step_time_ratio=common.ratio(recomputed["median_step_s"],
                                               plain["median_step_s"]))
    if search:
        result["largest_batch"] = {"none": batch_size, "layers": None}
        probe = run("layers", 4 * batch_size)
        rows.append(probe)
        if "error" not in probe:
            start = _predicted_largest_batch(recomputed, probe, budget)
            result["predicted_largest_batch"] = start
            result["largest_batch"]["layers"] = _largest_batch_in_budget(
                rows, budget, recomputed, start, max_tries, lambda batch: run("layers", batch))
    return result


def _row_summary(row) -> str:
    return (f"peak {row['peak_rss_mib']:,.0f} MiB, built {row['rss_built_mib']:,.0f} MiB, "
            f"activations {row['activation_mib']:,.0f} MiB, step {row['median_step_s']:.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Activation recomputation: memory and time")
    parser.add_argument("--child", action="store_true", help="run one measurement (internal)")
    _child_arguments(parser)
    parser.add_argument("--json", dest="json_path", default=None, help="write the results here")
    parser.add_argument("--write", default=None,
                        help="markdown file whose recomputation section is replaced or appended")
    parser.add_argument("--from_json", default=None, help="render --write from an earlier --json")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.timed_steps < 1:
        parser.error("--warmup and --timed_steps must be >= 1 (the first step traces the step)")
    if args.child:
        result = _train(args)
        common.print_result(result)
        return 0
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            results = json.load(f)
    else:
        results = compare(args.batch_size, variant=args.variant,
                          sequence_length=args.sequence_length, warmup=args.warmup,
                          timed_steps=args.timed_steps)
        results["machine"] = common.machine_info()
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    if args.write:
        from benchmarks import report
        report.replace_section(args.write, SECTION_HEADING, report.recompute_section(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.exit(main())
