"""Deterministic tiny runs of each training objective, fingerprinted for refactor checks.

`python -m tests.training.golden_runs record` writes tests/training/golden_runs.json from the
current code; tests/training/test_golden_runs.py compares a fresh run with that record. The record
was taken before the Trainer was split by concern, so the test proves the split kept behaviour.
The MLM run's held-out figures (val_* and metrics.*) were re-taken when the held-out lines began
keeping their masks; its weights and training logs are still the original record's.
"""
import json
import os
import sys

import numpy as np

from tfmodels.config import load_config

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RECORD = os.path.join(HERE, "golden_runs.json")

_COMMON = ["deterministic=true", "precision=float32", "strategy=default", "seed=7", "data.limit=192",
           "data.vocab_size=400", "data.sequence_length=32", "model.variant=tiny",
           "model.max_sequence_length=32", "model.dropout=0.1"]


def classification_run(model_dir):
    """Trains a tiny BERT classifier from scratch (4 steps x 2 epochs); returns its fingerprint."""
    from tfmodels.tasks import common, train
    config = load_config(os.path.join(REPO, "configs", "bert_sentiment_zh.yaml"), _COMMON + [
        "data.length_buckets=null", "trainer.epochs=2", "trainer.steps_per_epoch=4", "data.batch_size=16",
        "trainer.checkpoint_every_steps=3", "trainer.log_every_steps=2"], model_dir=model_dir)
    result = train.run(config)
    model = common.load_model(os.path.join(model_dir, common.MODEL_FILE))
    return fingerprint(model.weights, {"history": result["history"], "metrics": result["metrics"]})


def mlm_run(model_dir):
    """Pretrains a tiny BERT with masked LM for 6 steps; returns its fingerprint."""
    from tfmodels.tasks import pretrain
    config = load_config(os.path.join(REPO, "configs", "bert_pretrain_zh.yaml"), _COMMON + [
        "data.max_predictions=5", "pretrain.steps=6", "pretrain.batch_size=16",
        "pretrain.checkpoint_every_steps=4", "pretrain.log_every_steps=2"], model_dir=model_dir)
    result = pretrain.run(config)
    import keras_hub
    encoder = keras_hub.models.BertBackbone.from_preset(os.path.join(model_dir, "encoder"))
    return fingerprint(encoder.weights, {"history": result.get("history", {}),
                                         "metrics": result.get("metrics", {})})


def fingerprint(weights, logs):
    """Per-variable sum, sum of squares and first values, plus the scalar logs."""
    variables = {}
    for w in weights:
        value = np.asarray(w.numpy(), dtype=np.float64)
        variables[w.path] = [float(value.sum()), float((value ** 2).sum()),
                             [float(v) for v in value.reshape(-1)[:3]]]
    return {"variables": variables, "logs": _scalars(logs)}


def _scalars(value, prefix=""):
    """Flattens nested dicts/lists of numbers into {"a.b.0": float}; skips timing entries."""
    out = {}
    if isinstance(value, dict):
        for key, item in value.items():
            if any(word in str(key) for word in ("per_second", "time", "seconds")):
                continue
            out.update(_scalars(item, f"{prefix}{key}."))
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        for index, item in enumerate(value):
            out[f"{prefix}{index}"] = float(item)
    elif isinstance(value, (int, float, np.floating, np.integer)):
        out[prefix.rstrip(".")] = float(value)
    return out


RUNS = {"classification": classification_run, "mlm": mlm_run}


def record(base_dir):
    results = {name: run(os.path.join(base_dir, name)) for name, run in RUNS.items()}
    with open(RECORD, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    import tempfile
    if sys.argv[1:] != ["record"]:
        sys.exit("usage: python -m tests.training.golden_runs record")
    with tempfile.TemporaryDirectory() as tmp:
        record(tmp)
    print(f"wrote {RECORD}")
