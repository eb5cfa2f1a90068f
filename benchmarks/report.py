"""Renders one run's results as BENCHMARKS.md.

The words live in report_template.md: one "section" block per part of the document and the
"phrase" blocks sentences are made from. This module computes the tables and figures that fill
them. To add a section: write its block in the template and a function
`(results, checks) -> {placeholder: value}` (or None: the section is left out, e.g. when the run
did not measure it), and add the pair to SECTIONS.
"""
from __future__ import annotations

import functools
import os
import re

from benchmarks import common
from benchmarks.common import ratio
from benchmarks.targets import find, paired_ratio, round_ratio_range

TEMPLATE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_template.md")
FRAMEWORK_NAMES = {"tfmodels": "tfmodels Trainer", "keras_hub": "keras-hub fit",
                   "hf_torch": "transformers + torch"}
SERVING_PATHS = {"savedmodel": "exported SavedModel (`serving_default`, raw strings)",
                 "keras_hub_predict": "keras-hub `BertTextClassifier.predict` (in memory, "
                                      "preprocessor)"}
BATCHING_LABELS = {"fixed": "fixed length", "dynamic": "dynamic padding (batch's longest)",
                   "buckets": "length buckets + dynamic padding"}
# Shares of the machine's CPU taken by other processes or other guests above which a run's
# figures are flagged as unreliable.
OTHER_CPU_LIMIT = 0.10


@functools.lru_cache(maxsize=None)
def _template():
    """({section name: text}, {phrase name: text}) from report_template.md."""
    with open(TEMPLATE_PATH, encoding="utf-8") as f:
        parts = re.split(r"^<!-- (section|phrase): (\w+) -->\n", f.read(), flags=re.MULTILINE)
    blocks = {"section": {}, "phrase": {}}
    for kind, name, text in zip(parts[1::3], parts[2::3], parts[3::3]):
        blocks[kind][name] = text if kind == "section" else text.rstrip("\n")
    return blocks["section"], blocks["phrase"]


def _phrase(name, **fields):
    return _template()[1][name].format_map(fields)


def _f(value, digits=0):
    return "–" if value is None else f"{value:,.{digits}f}"


def _x(value):
    return "–" if value is None else f"{value:.2f}×"


def _spread(spread):
    return "–" if not spread else f"{spread[0]:.2f}–{spread[1]:.2f}×"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _tfmodels_row(training, **keys):
    """The Trainer's row at one step per call (as in the training table) matching `keys`."""
    return find(training, framework="tfmodels", steps_per_execution=1, **keys)


def _protocol(settings):
    interleaved = "rounds" in settings  # results of earlier runs measured each side in turn
    return _phrase("protocol_interleaved" if interleaved else "protocol_sequential", **settings)


def _header(results, checks):
    return dict(quick_flag=" --quick" if results["quick"] else "", date=results["date"],
                mode=("quick smoke run (tiny step counts, mini only)" if results["quick"]
                      else "full run"),
                minutes=results["duration_s"] / 60, protocol=_protocol(results["settings"]),
                sequence_length=results["settings"]["sequence_length"],
                batch_size=results["settings"]["batch_size"])


def _no_bf16_line(cpu_flags):
    return None if common.has_bf16_instructions(cpu_flags) else _phrase("no_bf16")


def _cpu_use_line(results):
    use = results.get("cpu_use")
    return _phrase("cpu_use", **use) if use and use.get("other") is not None else None


def _unreliable_reasons(results):
    """Why other work on the machine makes this run's figures unreliable (maybe nothing)."""
    reasons = []
    use = results.get("cpu_use")
    if use and use.get("other") is not None:
        for key, what in (("other", "other processes"), ("steal", "other guests (steal)")):
            if use[key] > OTHER_CPU_LIMIT:
                reasons.append(f"{what} took {use[key]:.0%} of the CPU while this ran")
    else:  # runs without CPU accounting: the load average also counts this benchmark
        cores = results["machine"]["cores"] or 1
        loads = [*results["machine"]["load_average"], *results["machine_end"]["load_average"]]
        if max(loads) > cores:
            reasons.append(f"the load average reached {max(loads):.1f} on {cores} cores")
    mfus = [row.get("mfu") for row in results["training"] if row.get("mfu")]
    if mfus and max(mfus) > 1.0:
        reasons.append(_phrase("mfu_above_1", mfu=max(mfus)))
    return reasons


def _machine(results, checks):
    machine, versions = results["machine"], results["versions"]
    missing = [name for name, version in versions.items() if not version]
    optional = [_no_bf16_line(machine["cpu_flags"]), _cpu_use_line(results)]
    reasons = _unreliable_reasons(results)
    return dict(
        machine, flags=", ".join(machine["cpu_flags"]) or "none of interest",
        load_start=", ".join(f"{v:.2f}" for v in machine["load_average"]),
        load_end=", ".join(f"{v:.2f}" for v in results["machine_end"]["load_average"]),
        optional_lines="".join(line + "\n" for line in optional if line),
        versions=", ".join(f"{k} {v}" for k, v in versions.items() if v)
        + (f"; not installed: {', '.join(missing)}" if missing else ""),
        environment=", ".join(f"{k}={v}" for k, v in machine["env"].items() if v)
        or "defaults (oneDNN on, TF and torch threads = cores)",
        reliability="\n" + _phrase("unreliable", reasons="; ".join(reasons)) + "\n" if reasons else "")


def _targets(results, checks):
    rows = [[c["target"], c["detail"], f"≥ {c['goal']}",
             f"{c['measured']:.2f}" if c["measured"] is not None and "MFU" in c["target"]
             else _x(c["measured"]), _spread(c.get("spread")), f"**{c['status']}**"]
            for c in checks]
    return {"targets": _table(["target", "where", "goal", "measured", "per-round range",
                               "status"], rows)}


def _versus(ours, theirs):
    """"1.05× (0.98–1.10×)": the median-based ratio and its per-round range."""
    if not ours or not theirs or "error" in theirs:
        return "–"
    spread = round_ratio_range(ours, theirs)
    return _x(paired_ratio(ours, theirs)) + (f" ({_spread(spread)})" if spread else "")


def _comparison_cells(row, training):
    """The "Trainer ÷ keras-hub" and "Trainer ÷ HF" cells of one training-table row."""
    keys = dict(task=row["task"], size=row["size"], precision=row["precision"])
    if row["framework"] == "tfmodels":
        keras_row = find(training, framework="keras_hub", steps_per_execution=1,
                         jit_compile=False, **keys)
        hf_row = find(training, framework="hf_torch", **keys)
        return [_versus(row, keras_row), _versus(row, hf_row)]
    versus = _versus(_tfmodels_row(training, **keys), row)
    return ["", versus] if row["framework"] == "hf_torch" else [versus, ""]


def _training(results):
    """The training table (one step per call, no XLA) with its notes: skipped or failed sides."""
    training = results["training"]
    rows = [[row["task"], row["size_label"], row["precision"], FRAMEWORK_NAMES[row["framework"]],
             _f(1e3 * row["median_step_s"]), _f(row["examples_per_s"], 1),
             _f(row["tokens_per_s"]), _f(row["flops_per_s"] / 1e9, 1), _f(row.get("mfu"), 2)]
            + _comparison_cells(row, training) for row in training
            if "error" not in row and row.get("steps_per_execution", 1) == 1
            and not row.get("jit_compile")]
    table = _table(["task", "model", "precision", "framework", "median step ms", "examples/s",
                    "tokens/s", "model GFLOP/s", "MFU", "Trainer ÷ keras-hub", "Trainer ÷ HF"],
                   rows)
    if results.get("hf_message"):
        table += f"\n\nHugging Face/PyTorch: {results['hf_message']}"
    errors = [f"- {r['framework']} {r.get('task')} {r.get('size')} {r.get('precision')}: "
              f"{r['error']}" for r in training if "error" in r]
    return table + ("\n\nFailed measurements:\n" + "\n".join(errors) if errors else "")


def _skipped_shares(results):
    """Per task and size, the share of the model FLOPs the tfmodels rows do not execute."""
    shares = {}
    for row in results["training"]:
        if row["framework"] != "tfmodels" or "error" in row or "max_predictions" not in row:
            continue
        read = 1 if row["task"] == "classification" else row["max_predictions"]
        skipped = common.top_layer_skipped_flops(common.SIZES[row["size"]], row["batch_size"],
                                                 row["sequence_length"], read)
        shares[row["task"], row["size"]] = f"{100 * skipped / row['flops_per_step']:.0f}%"
    return ", ".join(f"{task} {size} {share}" for (task, size), share in shares.items()) or "–"


def _training_section(results, checks):
    hf_precisions = results["settings"].get("hf_precisions", ["float32", "mixed_bfloat16"])
    return dict(vocabulary_size=results["vocabulary_size"], hf_precisions=", ".join(hf_precisions),
                skipped_shares=_skipped_shares(results), training=_training(results))


def _peak(results, checks):
    rows = [[when, p["precision"], f"{p['n']}³", _f(p["best_gflops"]), _f(p["median_gflops"]),
             p["repeats"]] for when, key in (("start", "peak"), ("after training", "peak_end"))
            for p in results.get(key, [])]
    return {"peak": _table(["measured", "precision", "tf.matmul", "best GFLOP/s",
                            "median GFLOP/s", "calls"], rows)}


def _pipeline(results, checks):
    rows = []
    for pipe in results["pipeline"]:
        task = "classification" if pipe["pipeline"] == "classification" else "mlm"
        consumer = (_tfmodels_row(results["training"], task=task, size="mini",
                                  precision="mixed_bfloat16")
                    or find(results["training"], framework="tfmodels", task=task, size="mini"))
        consumed = consumer and consumer["examples_per_s"]
        rows.append([pipe["pipeline"], _f(pipe["examples_per_s"]), _f(pipe["tokens_per_s"]),
                     _f(pipe["padded_tokens_per_s"]), _f(consumed, 1),
                     _x(ratio(pipe["examples_per_s"], consumed))])
    return {"pipeline": _table(["pipeline (L=128, B=32)", "examples/s", "real tokens/s",
                                "padded tokens/s", "Trainer mini bf16 consumes (examples/s)",
                                "ratio"], rows)}


def _mlp(results, checks):
    mlp = results.get("mlp")
    return {"mlp": _phrase("mlp", **mlp, hidden="→".join(map(str, mlp["hidden_units"])),
                           median_ms=1e3 * mlp["median_step_s"]) if mlp else "not measured"}


def _serving(results, checks):
    serving = results.get("serving")
    if not serving:
        return {"serving": "not measured"}
    rows = [[name, _f(serving[key]["p50_ms"], 1), _f(serving[key]["p99_ms"], 1),
             _f(serving[key]["examples_per_s"], 1)] for key, name in SERVING_PATHS.items()]
    speedup = ratio(serving["savedmodel"]["examples_per_s"],
                    serving["keras_hub_predict"]["examples_per_s"])
    return {"serving": _table(["path (BERT-mini, float32, L=128)", "batch 1 p50 ms",
                               "batch 1 p99 ms", "batch 64 examples/s"], rows)
            + "\n\n" + _phrase("serving", **serving, speedup=_x(speedup))}


def _memory(results, checks):
    memory = results.get("memory")
    if not memory:
        return {"memory": "not measured"}
    return {"memory": f"failed: {memory['error']}" if "error" in memory
            else _phrase("memory", **memory)}


# Speed work: one function per knob, each returning its bullet lines (none when not measured).

def _precision_lines(results):
    lines = []
    for size in ("mini", "wide"):
        for task in ("classification", "mlm"):
            f32, bf16 = (_tfmodels_row(results["training"], task=task, size=size,
                                       precision=precision)
                         for precision in ("float32", "mixed_bfloat16"))
            if f32 and bf16:
                lines.append(_phrase("speed_precision", task=task, size=size, speedup=_x(
                    ratio(bf16["tokens_per_s"], f32["tokens_per_s"]))))
    return lines


def _steps_per_execution_lines(results):
    spe = find(results["training"], framework="tfmodels", steps_per_execution=8)
    if not spe:
        return []
    base = _tfmodels_row(results["training"], task=spe["task"], size=spe["size"],
                         precision=spe["precision"])
    return [_phrase("speed_steps_per_execution", **spe, step_ms=spe["median_step_s"] * 1e3,
                    base_step_ms=base["median_step_s"] * 1e3 if base else float("nan"),
                    speedup=_x(ratio(spe["tokens_per_s"], base and base["tokens_per_s"])))]


def _xla_lines(results):
    xla = find(results["training"], framework="keras_hub", jit_compile=True)
    if not xla:
        return []
    base = find(results["training"], framework="keras_hub", task=xla["task"], size=xla["size"],
                precision=xla["precision"], jit_compile=False, steps_per_execution=1)
    return [_phrase("speed_xla", **xla,
                    speedup=_x(ratio(xla["tokens_per_s"], base and base["tokens_per_s"])))]


def _dropout_lines(results):
    sides = {row["fast_dropout"]: row for row in results.get("dropout", [])}
    if set(sides) != {False, True}:
        return []
    fast, keras_masks = sides[True]["tokens_per_s"], sides[False]["tokens_per_s"]
    return [_phrase("speed_dropout", **sides[True], fast=fast, keras=keras_masks,
                    speedup=_x(ratio(fast, keras_masks)))]


def _pooling_lines(results):
    sides = {row["pooling"]: row for row in results.get("pooling", [])}
    if set(sides) != {"mean", "max_mean"}:
        return []
    mean, max_mean = sides["mean"], sides["max_mean"]
    return [_phrase("speed_pooling", **max_mean, max_mean_ms=max_mean["median_step_s"] * 1000,
                    mean_ms=mean["median_step_s"] * 1000,
                    slowdown=_x(paired_ratio(mean, max_mean)),
                    spread=_spread(round_ratio_range(mean, max_mean)))]


def _batching_lines(results):
    batching = {row["mode"]: row for row in results.get("batching", [])}
    fixed = batching.get("fixed")
    if not fixed:
        return []
    stats = {key: results.get("review_lengths", {}).get(key, float("nan"))
             for key in ("median_tokens", "p90_tokens", "share_at_most_50")}
    return [_phrase("speed_batching", **fixed, **stats)] + [
        _phrase("speed_batching_mode", **{"real_token_share": float("nan"), **row},
                label=BATCHING_LABELS.get(mode, mode),
                speedup=_x(ratio(row["examples_per_s"], fixed["examples_per_s"])))
        for mode, row in batching.items()]


def _thread_lines(results):
    threads = results.get("threads", [])
    rows = [row for row in threads if "error" not in row]
    default = next((row for row in rows if row["inter_op"] == row["intra_op"] == 0), None)
    if not default:
        return [f"- Thread pools: not measured ({threads[0]['error']})."] if threads else []
    parts = [f"inter {row['inter_op'] or 'default'} / intra {row['intra_op'] or 'default'}: "
             f"{_f(row['tokens_per_s'])} tokens/s "
             f"({_x(ratio(row['tokens_per_s'], default['tokens_per_s']))})" for row in rows]
    return [_phrase("speed_threads", **default, parts="; ".join(parts))]


def _length_parts_lines(results):
    sides = {row["length_sorted_parts"]: row for row in results.get("length_parts", [])}
    whole = sides.get(1)
    if not whole or len(sides) < 2:
        return []
    parts = [f"{k} parts {row['median_step_s'] * 1000:.0f} ms/step, {_x(paired_ratio(row, whole))} as fast "
             f"(per round {_spread(round_ratio_range(row, whole))})"
             for k, row in sorted(sides.items()) if k != 1]
    return [_phrase("speed_length_parts", **whole, whole_ms=whole["median_step_s"] * 1000, parts="; ".join(parts))]


def _side_by_side_lines(results):
    result = results.get("side_by_side")
    if not result:
        return []
    rates = result["steps_per_s"]
    return [_phrase("speed_side_by_side", **result, alone_steps_per_s=rates["after_one_another"],
                    beside_steps_per_s=rates["side_by_side"], speedup=_x(result["ratio"]),
                    spread=_spread((min(result["round_ratios"]), max(result["round_ratios"]))))]


SPEED_KNOBS = (_precision_lines, _steps_per_execution_lines, _xla_lines, _dropout_lines,
               _pooling_lines, _length_parts_lines, _side_by_side_lines, _batching_lines,
               _thread_lines)


def _speed(results, checks):
    lines = [line for knob in SPEED_KNOBS for line in knob(results)]
    auto = common.auto_precision(results["machine"]["cpu_flags"])
    return {"speed": "\n".join(lines) or "not measured",
            "auto_precision": _phrase("auto_bf16" if auto == "mixed_bfloat16" else "auto_float32")}


# (template section, function filling its placeholders or None), in document order.
def _recompute(results, checks):
    return {"recompute": recompute_section(results["recompute"])} if "recompute" in results else None


SECTIONS = (
    ("header", _header),
    ("machine", _machine),
    ("targets", _targets),
    ("training", _training_section),
    ("peak", _peak),
    ("pipeline", _pipeline),
    ("mlp", _mlp),
    ("serving", _serving),
    ("memory", _memory),
    ("recompute", _recompute),
    ("speed", _speed),
    ("formulas", None),
    ("not_measured", None),
)


def render(results, checks) -> str:
    """Returns BENCHMARKS.md for one run.

    Args:
        results: dict from run_all.
        checks: list from targets.evaluate_targets.
    """
    texts = []
    for name, fill in SECTIONS:
        fields = fill(results, checks) if fill else {}
        if fields is not None:
            texts.append(_template()[0][name].format_map(fields))
    return "".join(texts)


def _goal(value, goal) -> str:
    if value is None:
        return "not measured"
    return f"{value:.2f}× (goal ≤ {goal}×: **{'PASS' if value <= goal else 'MISS'}**)"


def _recompute_rows(runs):
    rows = []
    for run in runs:
        shape = f"{run['batch_size']} × {run['sequence_length']}"
        if "error" in run:
            rows.append((run["recompute"], shape, f"failed: {run['error']}", "", "", "", ""))
            continue
        rows.append((run["recompute"], shape, _f(run["peak_rss_mib"]), _f(run["rss_built_mib"]),
                     _f(run["activation_mib"]), _f(run["median_step_s"], 1),
                     f"{len(run['step_times_s'])} ({_f(run['load_average'][0], 1)})"))
    return _table(("recompute", "batch × length", "peak RSS MiB", "RSS after build MiB",
                   "activation MiB", "step s", "timed steps (load avg)"), rows)


def _largest_batches(result) -> str:
    largest = result.get("largest_batch")
    if not largest:
        return ""
    layers, last = largest["layers"], result["runs"][-1]
    found = (f"**{layers}** with it" if layers is not None else
             f"not found with it (predicted {result.get('predicted_largest_batch')}, runs above)")
    confirmed = ("; the next larger batch with it exceeds the budget (last row)"
                 if layers is not None and last.get("batch_size") == layers + 1
                 and last.get("peak_rss_mib", 0.0) > result["budget_mib"] else "")
    return (f"In a memory budget of {result['budget_mib']:,.0f} MiB (the peak RSS without "
            f"recomputation at batch {result['batch_size']}), the largest batch of length "
            f"{result['sequence_length']} that trains is **{largest['none']}** without "
            f"recomputation and {found}{confirmed}.")


def recompute_section(result) -> str:
    """The "Activation recomputation" section of BENCHMARKS.md from `recompute.compare`."""
    from benchmarks.recompute import SECTION_HEADING

    runs = result["runs"]
    first = runs[0]
    parameters = f", {first['parameters']:,} parameters" if "parameters" in first else ""
    return f"""{SECTION_HEADING}

`trainer.recompute: layers` (`tfmodels.models.set_recompute`): BERT-{result['variant']}{parameters},
classifier with mean pooling, length {result['sequence_length']} (every position a real token),
{result['precision']}, trained with the Trainer (AdamW, fast dropout masks), each run in a fresh
process (`python -m benchmarks.recompute`). Peak RSS is the process's own high-water mark (VmHWM);
RSS after build is read once the model, the optimizer with its slots and the Trainer exist, before
the first step;
**activation memory = peak RSS − RSS after build** (so it also holds the step's gradients, the
traced step and the optimizer's temporaries, the same with and without recomputation). Step time:
median of the timed steps after {result['warmup']} warm-up step (the runs at the first batch time
{result['timed_steps']} steps, the batch search 1); measured on the shared 2-core machine, so step
times are rough.

{_recompute_rows(runs)}

At batch {result['batch_size']}: activation memory with recomputation
{_goal(result.get('activation_ratio'), 0.5)}; step time {_goal(result.get('step_time_ratio'), 1.4)}.
{_largest_batches(result)}
"""


def replace_section(path, heading, section) -> None:
    """Replaces the `heading` section of a markdown file (up to the next "## ") or appends it."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.rstrip("\n") + "\n")
