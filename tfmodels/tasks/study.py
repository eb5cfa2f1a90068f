"""The pipeline's paired-seed study: per-seed results, mean ± std, paired differences, table and picture.

For each fine-tuning seed the pipeline trains (a) the classifier on the pretrained encoder and (b) the
same classifier from random initialization (optionally also an LSTM), with the same split, data
order seed and budget. This module turns those per-seed results into `results.json` fields, the
markdown table and `validation_curves.png` (validation accuracy over fine-tuning steps).
"""

from __future__ import annotations

import math

import numpy as np

ROWS = (("pretrained_finetuned", "(a) pretrained + fine-tuned BERT"),
        ("random_init", "(b) same BERT from random init, same budget"),
        ("lstm", "LSTM classifier (BiLSTM, random init)"),
        ("tfidf_logreg", "(c) char 1-3-gram TF-IDF + logistic regression"))
SHORT_NAMES = {"pretrained_finetuned": "(a)", "random_init": "(b)", "lstm": "LSTM", "tfidf_logreg": "(c)"}
SPLITS = ("validation", "test")
METRICS = ("accuracy", "macro_f1")
# The rows (a) is compared with review by review, and how the comparison is named.
PAIRED_AGAINST_A = {"random_init": "(a) − (b)", "tfidf_logreg": "(a) − (c)"}
CURVES_FILE = "validation_curves.png"


def summary(metrics: dict) -> dict:
    """Accuracy and macro-F1 of one split's metrics, as floats."""
    return {"accuracy": float(metrics["accuracy"]), "macro_f1": float(metrics["macro_f1"])}


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def validation_curve(evaluations) -> list[list[float]]:
    """[[optimizer step, validation accuracy], ...] from a fit's evaluation records."""
    return [[int(e["step"]), float(e["val_accuracy"])] for e in evaluations or [] if "val_accuracy" in e]


def aggregate(per_seed: list[dict]) -> dict:
    """Mean ± std per row, split and metric, and the paired difference (a) − (b) per seed.

    Args:
        per_seed: list of dict. Each {"seed", "validation": {row: summary}, "test": {row: summary}}.
    """
    rows = [key for key, _ in ROWS if key in per_seed[0]["test"]]
    result = {split: {} for split in SPLITS}
    for split in SPLITS:
        for row in rows:
            entry = {}
            for metric in METRICS:
                entry[metric], entry[f"{metric}_std"] = mean_std([s[split][row][metric] for s in per_seed])
            result[split][row] = entry
    result["paired_difference"] = paired_difference(per_seed)
    return result


def paired_difference(per_seed: list[dict]) -> dict:
    """(a) − (b) accuracy per seed and split, with mean, std and whether every seed is positive."""
    result = {}
    for split in SPLITS:
        diffs = [s[split]["pretrained_finetuned"]["accuracy"] - s[split]["random_init"]["accuracy"]
                 for s in per_seed]
        mean, std = mean_std(diffs)
        result[split] = {"per_seed": diffs, "mean": mean, "std": std, "all_positive": all(d > 0 for d in diffs)}
    return result


def paired_review_difference(correct_a, correct_b) -> dict:
    """The accuracy difference of two classifiers on the same reviews, with its standard error over
    the reviews: how far the difference would move on another sample of reviews of the same kind.

    Args:
        correct_a, correct_b: bool arrays [reviews] (one run each) or [seeds, reviews] (one row per
            seed; the seeds share the split's reviews, so the per-review differences are averaged
            over seeds before their spread is taken).

    Returns:
        {"difference", "standard_error", "disagreement"}: the mean difference, the standard error of
        that mean over reviews, and the fraction of (review, seed) pairs where exactly one is right.
    """
    differences = np.asarray(correct_a, dtype=np.float64) - np.asarray(correct_b, dtype=np.float64)
    per_review = differences.reshape(-1, differences.shape[-1]).mean(axis=0)
    return {"difference": float(per_review.mean()),
            "standard_error": float(per_review.std(ddof=1) / math.sqrt(len(per_review))),
            "disagreement": float(np.mean(differences != 0))}


def review_level(correct: list[dict]) -> dict:
    """(a) − (b) and (a) − (c) per split, per seed and over the seeds, with their standard errors
    over the split's reviews (`paired_review_difference`).

    Args:
        correct: list of dict, one per seed: {row: {split: bool array, whether each review is
            classified right}} for the rows `pretrained_finetuned`, `random_init`, `tfidf_logreg`.
    """
    result = {}
    for split in SPLITS:
        rows = {row: np.stack([seed[row][split] for seed in correct]) for row in PAIRED_AGAINST_A}
        a = np.stack([seed["pretrained_finetuned"][split] for seed in correct])
        result[split] = {name: {"per_seed": [paired_review_difference(a[i], rows[row][i]) for i in range(len(a))],
                                "mean": paired_review_difference(a, rows[row])}
                         for row, name in PAIRED_AGAINST_A.items()}
    return result


def table_markdown(results: dict) -> str:
    """The study table: mean ± std over seeds, then one line per seed, then the paired difference."""
    per_seed = results["seeds"]
    n = len(per_seed)
    pretraining = "one pretraining per seed" if "pretrain" in per_seed[0] else "one shared pretraining"
    sample = results.get("train_examples")
    labelled = (f"; each seed's classifiers, (c) included, train on its own stratified sample of {sample:,} "
                "labelled training examples" if sample else "")
    lines = [f"Mean ± std over {n} seed(s) ({', '.join(str(s['seed']) for s in per_seed)}); "
             f"{pretraining}; the same split for every seed{labelled}.", "",
             "| model | val accuracy | val macro-F1 | test accuracy | test macro-F1 |", "|---|---|---|---|---|"]
    for key, title in ROWS:
        if key not in results["test"]:
            continue
        cells = [_mean_cell(results[split][key], metric) for split in SPLITS for metric in METRICS]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "| seed | " + " | ".join(f"{SHORT_NAMES[k]} val / test" for k, _ in ROWS if k in results["test"])
              + " | (a) − (b) val / test |", "|---" * (2 + sum(k in results["test"] for k, _ in ROWS)) + "|"]
    for s in per_seed:
        cells = [f"{s['validation'][k]['accuracy']:.2%} / {s['test'][k]['accuracy']:.2%}"
                 for k, _ in ROWS if k in results["test"]]
        diff = [s[split]["pretrained_finetuned"]["accuracy"] - s[split]["random_init"]["accuracy"] for split in SPLITS]
        lines.append(f"| {s['seed']} | " + " | ".join(cells) + f" | {diff[0]:+.2%} / {diff[1]:+.2%} |")
    lines.append("")
    for split in SPLITS:
        d = results["paired_difference"][split]
        lines.append(f"Paired difference (a) − (b), {split} accuracy: {d['mean']:+.2%} ± {d['std']:.2%} "
                     f"(per seed {', '.join(f'{v:+.2%}' for v in d['per_seed'])}; "
                     f"{'positive for every seed' if d['all_positive'] else 'NOT positive for every seed'}).")
    if "review_level" in results:
        lines += [""] + _review_level_lines(results["review_level"])
    if "pretrain" in per_seed[0]:
        lines += ["", _pretraining_line(per_seed)]
    return "\n".join(lines) + "\n"


def _review_level_lines(review_level: dict) -> list[str]:
    """The paired differences with their standard errors over the split's reviews."""
    lines = ["Standard error over the reviews (how far a paired difference would move on another sample of "
             "reviews of the same kind; every seed sees the same reviews):"]
    for split in SPLITS:
        for name, entry in review_level[split].items():
            mean, seeds = entry["mean"], entry["per_seed"]
            per_seed = ", ".join(f"{s['difference']:+.2%} ± {s['standard_error']:.2%}" for s in seeds)
            lines.append(f"- {name}, {split} accuracy: {mean['difference']:+.2%} ± {mean['standard_error']:.2%} "
                         f"over {len(seeds)} seed(s) (per seed {per_seed}; the two disagree on "
                         f"{mean['disagreement']:.1%} of the reviews).")
    return lines


def _pretraining_line(per_seed: list[dict]) -> str:
    """The held-out loss and accuracies of each seed's own pretraining run (`study.pretraining: per_seed`)."""
    parts = []
    for s in per_seed:
        heldout = s["pretrain"]["heldout"]
        accuracies = [f"{name.replace('_', ' ')} {value:.2%}" for name, value in sorted(heldout.items())
                      if name.endswith("accuracy")]
        parts.append(f"seed {s['seed']}: loss {heldout['loss']:.3f}, " + ", ".join(accuracies))
    return "Held-out pretraining metrics of each seed's encoder (after its last phase): " + "; ".join(parts) + "."


def _mean_cell(entry: dict, metric: str) -> str:
    if metric == "accuracy":
        return f"{entry[metric]:.2%} ± {entry[metric + '_std']:.2%}"
    return f"{entry[metric]:.4f} ± {entry[metric + '_std']:.4f}"


def plot_curves(per_seed: list[dict], path: str) -> str:
    """Writes validation accuracy over fine-tuning steps of (a) and (b), every seed, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=110)
    styles = {"pretrained_finetuned": ("tab:blue", "(a) pretrained + fine-tuned"),
              "random_init": ("tab:orange", "(b) random init")}
    for key, (color, label) in styles.items():
        for i, s in enumerate(per_seed):
            curve = s.get("curves", {}).get(key) or []
            if curve:
                steps, accuracy = zip(*curve)
                axes.plot(steps, [100 * a for a in accuracy], color=color, alpha=0.8, marker=".",
                          label=label if i == 0 else None)
    axes.set_xlabel("fine-tuning optimizer step")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title(f"Validation accuracy while fine-tuning, {len(per_seed)} seed(s)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return path
