"""Speed-work measurements: batching of the real reviews (fixed length, dynamic padding, length
buckets) and TensorFlow thread-pool sizes (the other knobs, bf16, steps_per_execution and XLA,
are rows of the training table run by run_all)."""
from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np

from benchmarks import common

# Batching modes compared on the real reviews: name -> classification_dataset arguments.
# The bucket boundaries are the ones configs/bert_sentiment_zh.yaml ships.
REVIEW_BUCKETS = [24, 32, 48, 64, 96]
BATCHING_MODES = {
    "fixed": {"dynamic_padding": False},
    "dynamic": {"dynamic_padding": True},
    "buckets": {"dynamic_padding": True, "length_buckets": REVIEW_BUCKETS},
}
# The demo's encoder (configs/demo_zh_sentiment.yaml: BERT-mini's width with 2 layers) and the
# classifier poolings compared on it.
DEMO_SIZE = common.ModelSize("demo", 2, 256, 4)
POOLINGS = ("mean", "max_mean")
# trainer.length_sorted_parts compared on the demo's classifier (1: whole batches).
LENGTH_SORTED_PARTS = (1, 2, 4)
# (inter-op, intra-op) thread-pool sizes compared; 0 is TensorFlow's default (one per core).
THREAD_SETTINGS = ((0, 0), (1, 0), (0, 1), (1, 1))


def review_length_stats(assets, tokenizer, limit=5000):
    """Token counts (without [CLS]/[SEP]) of the training reviews: median, p90, share <= 50."""
    from tfmodels.data import token_id_lists

    ids = token_id_lists(tokenizer, list(assets.train.texts)[:limit])
    lengths = np.array([len(row) for row in ids])
    return {"median_tokens": float(np.median(lengths)), "p90_tokens": float(np.percentile(
        lengths, 90)), "share_at_most_50": float(np.mean(lengths <= 50)),
        "reviews": int(len(lengths))}


def padded_share(dataset, batches):
    """Share of real (non-padding) tokens among the positions of the first `batches` batches."""
    real = total = 0
    for features, _ in dataset.take(batches):
        mask = features["padding_mask"].numpy()
        real, total = real + int(mask.sum()), total + mask.size
    return real / total


def measure_batching(assets, mode, size=common.SIZES["mini"], precision="mixed_bfloat16",
                     batch_size=32, sequence_length=128, warmup=5, timed_steps=20):
    """Trainer throughput on the real reviews with one batching mode of BATCHING_MODES.

    Step times vary with each batch's width, so throughput uses the mean step time, and the
    untimed warm-up lets retracing for new shapes settle.

    Args:
        assets: pipeline.TextAssets.
        mode: str. "fixed" (always L), "dynamic" (each batch padded to its longest) or
            "buckets" (batches of one length bucket, padded to their longest).
        size: common.ModelSize. Defaults to mini.
        precision: str. Defaults to "mixed_bfloat16".
        batch_size: int. Defaults to 32.
        sequence_length: int. Defaults to 128.
        warmup: int. Untimed calls. Defaults to 5.
        timed_steps: int. Defaults to 20.
    """
    from tfmodels.data import classification_dataset, make_tokenizer

    from benchmarks.training import TrainerSide

    keras.backend.clear_session()
    tokenizer = make_tokenizer(assets.vocab_path)
    data = classification_dataset(assets.train, tokenizer, sequence_length, batch_size,
                                  repeat=True, **BATCHING_MODES[mode])
    with common.dtype_policy(precision):
        side = TrainerSide("classification", size, data, tokenizer.vocabulary_size())
    side.run(warmup)
    times = side.run(timed_steps + 1)
    real_share = padded_share(data, 200)
    mean = sum(times) / len(times)
    return {"mode": mode, "size": size.name, "precision": precision,
            "batch_size": batch_size, "sequence_length": sequence_length,
            "timed_steps": len(times), "mean_step_s": mean,
            "median_step_s": float(np.median(times)), "examples_per_s": batch_size / mean,
            "real_token_share": real_share}


def measure_dropout(vocabulary_size, size=common.SIZES["mini"], precision="mixed_bfloat16",
                    warmup=3, rounds=4, steps_per_round=4):
    """Trainer classification throughput with Keras' dropout masks and with `keep_mask` masks.

    Two Trainers (fast_dropout False and True) are built once and take turns
    (`interleave.run_rounds`).

    Args:
        vocabulary_size: int. V of the encoder.
        size: common.ModelSize. Defaults to mini.
        precision: str. Defaults to "mixed_bfloat16".
        warmup: int. Untimed steps per side first. Defaults to 3.
        rounds: int. Turns per side. Defaults to 4.
        steps_per_round: int. Steps per turn. Defaults to 4.
    """
    from benchmarks import interleave
    from benchmarks.training import TrainerSide, repeated_dataset, synthetic_batch, turns_result

    keras.backend.clear_session()
    batch_size, sequence_length = common.BATCH_SIZE, common.SEQUENCE_LENGTH
    data = repeated_dataset(synthetic_batch("classification", batch_size, sequence_length,
                                            vocabulary_size))
    with common.dtype_policy(precision):
        sides = {fast: TrainerSide("classification", size, data, vocabulary_size,
                                   fast_dropout=fast) for fast in (False, True)}
    turns = interleave.run_rounds(sides, rounds, steps_per_round, warmup)
    return [turns_result("tfmodels", "classification", size, precision, side_turns,
                         rounds=rounds, steps_per_round=steps_per_round, batch_size=batch_size,
                         sequence_length=sequence_length, vocabulary_size=vocabulary_size,
                         max_predictions=0, warmup=warmup, fast_dropout=fast)
            for fast, side_turns in turns.items()]


def measure_pooling(assets, size=DEMO_SIZE, precision="mixed_bfloat16", batch_size=32,
                    sequence_length=128, warmup=3, rounds=4, steps_per_round=4):
    """Fine-tuning throughput of the classifier with each pooling of POOLINGS, interleaved.

    The demo's fine-tuning as it runs: real training reviews in batches padded to their longest
    review; one Trainer per pooling, built once, taking turns (`interleave.run_rounds`). Batch
    widths vary from turn to turn (the reviews are reshuffled), so single rounds are noisy; the
    report compares the sides by the median of the per-round ratios.

    Args:
        assets: pipeline.TextAssets.
        size: common.ModelSize. Defaults to DEMO_SIZE.
        precision: str. Defaults to "mixed_bfloat16".
        batch_size: int. Defaults to 32.
        sequence_length: int. Defaults to 128.
        warmup: int. Untimed steps per side first. Defaults to 3.
        rounds: int. Turns per side. Defaults to 4.
        steps_per_round: int. Steps per turn. Defaults to 4.

    Returns:
        list of dict: one `turns_result` row per pooling, with its `pooling`.
    """
    variants = {pooling: {"pooling": pooling} for pooling in POOLINGS}
    return _interleaved_on_reviews(assets, variants, "pooling", size, precision, batch_size, sequence_length,
                                   warmup, rounds, steps_per_round)


def measure_length_parts(assets, size=DEMO_SIZE, precision="mixed_bfloat16", batch_size=32,
                         sequence_length=128, warmup=3, rounds=4, steps_per_round=4):
    """Fine-tuning throughput of the demo's classifier (mean pooling) with each
    `length_sorted_parts` of LENGTH_SORTED_PARTS, interleaved as in `measure_pooling` (same arguments).

    Returns:
        list of dict: one `turns_result` row per setting, with its `length_sorted_parts`.
    """
    variants = {parts: {"pooling": "mean", "length_sorted_parts": parts} for parts in LENGTH_SORTED_PARTS}
    return _interleaved_on_reviews(assets, variants, "length_sorted_parts", size, precision, batch_size,
                                   sequence_length, warmup, rounds, steps_per_round)


def _interleaved_on_reviews(assets, variants, label, size, precision, batch_size, sequence_length, warmup,
                            rounds, steps_per_round):
    """One classification Trainer per variant (name -> TrainerSide keyword arguments) on the real
    training reviews in batches padded to their longest, taking turns; one `turns_result` row per
    variant, with the variant's name under `label`."""
    from tfmodels.data import classification_dataset, make_tokenizer

    from benchmarks import interleave
    from benchmarks.training import TrainerSide, turns_result

    keras.backend.clear_session()
    tokenizer = make_tokenizer(assets.vocab_path)
    data = classification_dataset(assets.train, tokenizer, sequence_length, batch_size,
                                  repeat=True, dynamic_padding=True)
    with common.dtype_policy(precision):
        sides = {name: TrainerSide("classification", size, data, tokenizer.vocabulary_size(), **kwargs)
                 for name, kwargs in variants.items()}
    turns = interleave.run_rounds(sides, rounds, steps_per_round, warmup)
    return [turns_result("tfmodels", "classification", size, precision, side_turns,
                         rounds=rounds, steps_per_round=steps_per_round, batch_size=batch_size,
                         sequence_length=sequence_length,
                         vocabulary_size=tokenizer.vocabulary_size(), max_predictions=0,
                         warmup=warmup, **{label: name})
            for name, side_turns in turns.items()]


def measure_threads(inter_op, intra_op, vocabulary_size, warmup=3, timed_steps=12,
                    size_name="mini", precision="mixed_bfloat16"):
    """Trainer classification throughput with the given thread pools, in a fresh process.

    Thread pools can only be sized before TensorFlow starts, hence the child process.

    Args:
        inter_op: int. Inter-op threads (0: TensorFlow's default).
        intra_op: int. Intra-op threads (0: TensorFlow's default).
        vocabulary_size: int. V of the encoder.
        warmup: int. Untimed calls. Defaults to 3.
        timed_steps: int. Defaults to 12.
        size_name: str. common.SIZES key. Defaults to "mini".
        precision: str. Defaults to "mixed_bfloat16".
    """
    config = {"inter_op": inter_op, "intra_op": intra_op, "vocabulary_size": vocabulary_size,
              "warmup": warmup, "timed_steps": timed_steps, "size": size_name,
              "precision": precision}
    done = subprocess.run([sys.executable, "-m", "benchmarks.speed", json.dumps(config)],
                          cwd=common.REPO_ROOT, env=common.child_env(TF_CPP_MIN_LOG_LEVEL="3"),
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {**config, "error": common.last_line(done.stderr)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _threads_child(config):
    import tensorflow as tf
    from benchmarks import training

    tf.config.threading.set_inter_op_parallelism_threads(config["inter_op"])
    tf.config.threading.set_intra_op_parallelism_threads(config["intra_op"])
    result = training.measure_training(
        "tfmodels", "classification", common.SIZES[config["size"]], config["precision"],
        vocabulary_size=config["vocabulary_size"], warmup=config["warmup"],
        timed_steps=config["timed_steps"])
    result.update(inter_op=config["inter_op"], intra_op=config["intra_op"])
    print(json.dumps(result))


if __name__ == "__main__":
    _threads_child(json.loads(sys.argv[1]))
