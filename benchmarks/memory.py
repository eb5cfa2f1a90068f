"""Peak resident memory of BERT fine-tuning with the Trainer, measured in a fresh process.

`measure_peak_rss` runs `python -m benchmarks.memory` so the figure is this one job's peak
(the child's own high-water mark, `common.peak_rss_mib`), not the benchmark runner's.
"""
from __future__ import annotations

import argparse
import time

from benchmarks import common


def _train(variant, batch_size, sequence_length, steps, precision, vocabulary_size):
    import keras

    from benchmarks.training import repeated_dataset, synthetic_batch, tfmodels_optimizer
    from tfmodels.models import build_bert_classifier, build_bert_encoder
    from tfmodels.training import Trainer, apply_precision, get_strategy

    apply_precision(precision)
    strategy = get_strategy("auto")
    with strategy.scope():
        encoder = build_bert_encoder(variant, vocabulary_size=vocabulary_size,
                                     max_sequence_length=512)
        model = build_bert_classifier(encoder, 2)
        optimizer = tfmodels_optimizer(steps)
    trainer = Trainer(model, optimizer, strategy=strategy, best_metric=None, seed=0, verbose=0)
    batch = synthetic_batch("classification", batch_size, sequence_length, vocabulary_size)
    started = time.perf_counter()
    trainer.fit(repeated_dataset(batch), steps=steps)
    return {"parameters": int(model.count_params()), "seconds": time.perf_counter() - started,
            "precision": keras.mixed_precision.global_policy().name}


def child_main(argv=None):
    parser = argparse.ArgumentParser(description="Peak RSS of BERT fine-tuning (child process)")
    parser.add_argument("--variant", default="base")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--vocabulary_size", type=int, default=21128)
    args = parser.parse_args(argv)
    result = _train(args.variant, args.batch_size, args.sequence_length, args.steps,
                    args.precision, args.vocabulary_size)
    result.update(variant=args.variant, batch_size=args.batch_size,
                  sequence_length=args.sequence_length, steps=args.steps,
                  vocabulary_size=args.vocabulary_size,
                  peak_rss_mib=common.peak_rss_mib())
    common.print_result(result)


def measure_peak_rss(variant="base", batch_size=32, sequence_length=128, steps=3,
                     precision="mixed_bfloat16", vocabulary_size=21128, timeout=900):
    """Runs a few fine-tuning steps in a child process; returns its peak RSS and timing.

    Args:
        variant: str. BERT variant. Defaults to "base".
        batch_size: int. Defaults to 32.
        sequence_length: int. Defaults to 128.
        steps: int. Optimizer steps. Defaults to 3.
        precision: str. Defaults to "mixed_bfloat16" (what precision "auto" picks on this CPU).
        vocabulary_size: int. Defaults to 21128 (BERT-Chinese).
        timeout: int. Seconds before the child is stopped. Defaults to 900.
    """
    arguments = [f"--variant={variant}", f"--batch_size={batch_size}",
                 f"--sequence_length={sequence_length}", f"--steps={steps}",
                 f"--precision={precision}", f"--vocabulary_size={vocabulary_size}"]
    return common.run_child("benchmarks.memory", arguments, timeout)


if __name__ == "__main__":
    child_main()
