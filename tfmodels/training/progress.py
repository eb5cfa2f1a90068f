"""What a training run reports while it runs: console progress, TensorBoard scalars, step totals."""
import os
import sys

import keras
import numpy as np
import tensorflow as tf

TRAIN, VALIDATION = "train", "validation"


class StepTotals:
    """Host-side sums of training statistics over several steps, turned into log values.

    Args:
      objective: tfmodels.training.objectives.Objective. Names and computes the log values.
    """

    def __init__(self, objective):
        self.objective = objective
        self.values = {}
        self.seconds = 0.0
        self.steps = 0

    def add(self, totals, seconds, steps):
        for name, value in totals.items():
            self.values[name] = self.values.get(name, 0.0) + value
        self.seconds += seconds
        self.steps += steps

    def logs(self, with_speed=False):
        """The objective's logs (loss, accuracy, ...), plus throughput when `with_speed`."""
        if not self.values:
            return {}
        logs = self.objective.train_logs(self.values)
        if with_speed and self.seconds > 0:
            logs["examples_per_second"] = self.values["examples"] / self.seconds
            logs["step_time_seconds"] = self.seconds / self.steps
            if self.values["tokens"]:
                logs["tokens_per_second"] = self.values["tokens"] / self.seconds
        return logs


class ConsoleProgress:
    """Keras progress bar on a terminal, one plain line per log interval otherwise."""

    def __init__(self, verbose, target, epoch, epochs):
        self.verbose = verbose
        self.use_bar = verbose == 1 and sys.stdout.isatty()
        self.bar = keras.utils.Progbar(target) if self.use_bar else None
        self.epoch, self.epochs = epoch, epochs

    def update(self, step_in_epoch, global_step, logs, log_now):
        if self.use_bar:
            self.bar.update(step_in_epoch, [(k, v) for k, v in logs.items()])
        elif self.verbose and log_now:
            values = " ".join(f"{k}={v:.4g}" for k, v in logs.items())
            print(f"epoch {self.epoch + 1}/{self.epochs} step {global_step}: {values}", flush=True)

    def end(self, logs):
        if self.verbose:
            values = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if np.isscalar(v))
            if self.use_bar:
                sys.stdout.write("\n")
            print(f"epoch {self.epoch + 1}/{self.epochs} done: {values}", flush=True)

    def validation(self, values, step):
        if self.verbose:
            text = " ".join(f"{k}={v:.4g}" for k, v in values.items() if np.isscalar(v))
            print(f"epoch {self.epoch + 1}/{self.epochs} step {step} validation: {text}", flush=True)


class Summaries:
    """TensorBoard scalars under model_dir/train and model_dir/validation (chief only).

    Args:
      model_dir: str or None. None (or a non-chief process) writes nothing.
      enabled: bool. Whether this process writes.
    """

    def __init__(self, model_dir, enabled):
        self.writers = ({name: tf.summary.create_file_writer(os.path.join(model_dir, name))
                         for name in (TRAIN, VALIDATION)} if model_dir and enabled else {})

    def train(self, totals, step, learning_rate):
        """Writes the training logs of `totals` (a StepTotals) and the learning rate at `step`."""
        writer = self.writers.get(TRAIN)
        if writer is None:
            return
        with writer.as_default(step=step):
            for key, value in totals.logs(with_speed=True).items():
                tf.summary.scalar(key, value)
            tf.summary.scalar("learning_rate", float(learning_rate))

    def validation(self, values, step):
        """Writes the scalar validation metrics at `step`."""
        writer = self.writers.get(VALIDATION)
        if writer is None:
            return
        with writer.as_default(step=step):
            for key, value in values.items():
                if np.isscalar(value):
                    tf.summary.scalar(key, value)

    def close(self):
        for writer in self.writers.values():
            writer.close()
