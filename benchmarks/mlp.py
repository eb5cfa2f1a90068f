"""MLP training throughput on the embedded digits set with the Trainer (binaries' code path)."""
from __future__ import annotations

import keras

from benchmarks import common
from benchmarks.training import make_step_timer, tfmodels_optimizer


def measure_mlp(batch_size=32, hidden_units=(256,), warmup=5, timed_steps=100,
                precision="float32"):
    """Trains build_mlp on digits with features_dataset + Trainer; returns examples/s.

    Args:
        batch_size: int. Defaults to 32 (configs/mlp_digits.yaml).
        hidden_units: tuple of int. Defaults to (256,).
        warmup: int. Untimed calls. Defaults to 5.
        timed_steps: int. Timed steps. Defaults to 100.
        precision: str. Keras global policy. Defaults to "float32" (as the MLP config).
    """
    from tfmodels.data import features_dataset, load_digits_splits
    from tfmodels.models import build_mlp
    from tfmodels.training import Trainer, get_strategy

    keras.backend.clear_session()
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        splits = load_digits_splits()
        train = splits.train
        data = features_dataset(train.features, train.labels, batch_size, repeat=True)
        steps = warmup + 1 + timed_steps
        strategy = get_strategy("auto")
        with strategy.scope():
            model = build_mlp(train.features.shape[1:], list(hidden_units),
                              num_classes=splits.num_labels)
            optimizer = tfmodels_optimizer(steps, learning_rate=1e-3)
        trainer = Trainer(model, optimizer, strategy=strategy, best_metric=None, seed=0,
                          verbose=0)
        timer = make_step_timer()
        trainer.fit(data, steps=steps, callbacks=[timer])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    times = common.step_times(timer.events, warmup)
    result = {"framework": "tfmodels", "task": "mlp_digits", "batch_size": batch_size,
              "hidden_units": list(hidden_units), "precision": precision}
    result.update(common.summarize_steps(times, batch_size, 0))
    result["mean_examples_per_s"] = batch_size / result["mean_step_s"]
    return result
