"""Speed-work measurements: dynamic padding on real review lengths (the other knobs, bf16,
steps_per_execution and XLA, are rows of the training table run by run_all)."""
from __future__ import annotations

import keras
import numpy as np

from benchmarks import common
from benchmarks.training import train_tfmodels


def review_length_stats(assets, tokenizer, limit=5000):
    """Token counts (without [CLS]/[SEP]) of the training reviews: median, p90, share <= 50."""
    ids = tokenizer(list(assets.train.texts)[:limit])
    ids = ids.to_list() if hasattr(ids, "to_list") else ids
    lengths = np.array([len(row) for row in ids])
    return {"median_tokens": float(np.median(lengths)), "p90_tokens": float(np.percentile(
        lengths, 90)), "share_at_most_50": float(np.mean(lengths <= 50)),
        "reviews": int(len(lengths))}


def measure_padding(assets, dynamic_padding, size=common.SIZES["mini"],
                    precision="mixed_bfloat16", batch_size=32, sequence_length=128, warmup=5,
                    timed_steps=20):
    """Trainer throughput on the real reviews with fixed (L=128) or dynamic padding.

    Step times vary with the batch's longest review, so throughput uses the mean step time.

    Args:
        assets: pipeline.TextAssets.
        dynamic_padding: bool. classification_dataset(dynamic_padding=...).
        size: common.ModelSize. Defaults to mini.
        precision: str. Defaults to "mixed_bfloat16".
        batch_size: int. Defaults to 32.
        sequence_length: int. Defaults to 128.
        warmup: int. Untimed calls (retracing for new shapes settles). Defaults to 5.
        timed_steps: int. Defaults to 20.
    """
    from tfmodels.data import classification_dataset, make_tokenizer

    keras.backend.clear_session()
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        tokenizer = make_tokenizer(assets.vocab_path)
        data = classification_dataset(assets.train, tokenizer, sequence_length, batch_size,
                                      repeat=True, dynamic_padding=dynamic_padding)
        steps = warmup + 1 + timed_steps
        events, trainer = train_tfmodels("classification", size, data, steps,
                                         tokenizer.vocabulary_size())
    finally:
        keras.mixed_precision.set_global_policy(previous)
    times = common.step_times(events, warmup)
    mean = sum(times) / len(times)
    return {"dynamic_padding": dynamic_padding, "size": size.name, "precision": precision,
            "batch_size": batch_size, "sequence_length": sequence_length,
            "timed_steps": len(times), "mean_step_s": mean, "median_step_s": float(
                np.median(times)), "examples_per_s": batch_size / mean}
