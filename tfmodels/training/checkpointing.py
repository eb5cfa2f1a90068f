"""A training run's checkpoints: step checkpoints to resume from, the best model and its record.

Layout of a model_dir (written by the chief only; other workers of a multi-worker job write the
same files to a private temporary directory, removed when the process exits):
    ckpt-<step>.*        model, optimizer (with the loss scale), step, epoch, data iterator, RNG
    checkpoint           the state file naming the newest complete step checkpoint
    best/best-<step>.*   model weights at the best value of the tracked metric
    best/best.json       {"metric", "value", "step"} of that checkpoint
Every worker resumes from the chief's model_dir, so all of them restart at the same step.
"""
import json
import logging
import os

import tensorflow as tf

from tfmodels.training import distribute, preemption

logger = logging.getLogger(__name__)

BEST_DIR = "best"
BEST_RECORD = "best.json"


class CheckpointRestoreError(ValueError):
    """The latest checkpoint of model_dir cannot be restored (corrupt, or another model's)."""


def latest_checkpoint(model_dir):
    """Returns the newest step checkpoint path under model_dir, or None.

    Args:
      model_dir: str. Directory the Trainer wrote.
    """
    return tf.train.latest_checkpoint(model_dir)


def restore_model_weights(model, path):
    """Loads the model weights of a Trainer checkpoint (a model_dir, model_dir/best or a prefix).

    Args:
      model: keras.Model. Same architecture as the trained one.
      path: str. A checkpoint prefix or a directory holding a `checkpoint` file.

    Returns:
      str. The checkpoint prefix that was loaded.
    """
    prefix = tf.train.latest_checkpoint(path) if tf.io.gfile.isdir(path) else path
    if prefix is None:
        raise CheckpointRestoreError(f"no checkpoint found in {path!r}")
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    return prefix


class RunCheckpoints:
    """Saves and restores one Trainer's state under model_dir, and tracks its best model.

    Args:
      model_dir: str. The run directory every worker resumes from.
      strategy: tf.distribute.Strategy. Decides whether this process writes model_dir.
      state: dict of name to trackable. What a step checkpoint holds (model, optimizer, ...).
      model: keras.Model. What the best checkpoint holds.
      keep: int. Step checkpoints kept.
    """

    def __init__(self, model_dir, strategy, state, model, keep):
        self.model_dir = model_dir
        # The chief writes model_dir; the others a private copy that restore_best() reads back.
        self.write_dir = distribute.writable_dir(model_dir, strategy)
        self._checkpoint = tf.train.Checkpoint(**state)
        self._manager = tf.train.CheckpointManager(self._checkpoint, self.write_dir, max_to_keep=keep,
                                                   checkpoint_name="ckpt")
        self._best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                                os.path.join(self.write_dir, BEST_DIR), max_to_keep=1,
                                                checkpoint_name="best")

    @property
    def latest(self):
        """The newest step checkpoint this process wrote (None before the first)."""
        return self._manager.latest_checkpoint

    def restore_latest(self):
        """Restores the newest checkpoint of model_dir (the chief's), if any; returns its path."""
        path = tf.train.latest_checkpoint(self.model_dir)
        if path:
            try:
                self._checkpoint.restore(path).expect_partial()
            except (ValueError, IndexError, tf.errors.OpError) as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise CheckpointRestoreError(
                    f"{path}: cannot resume from this checkpoint ({reason}); it is corrupt or from "
                    f"a different model: delete it to resume from an older one, or use a new "
                    f"model_dir") from error
        return path

    def save(self, step):
        """Writes the step checkpoint of `step` unless it exists; returns its path."""
        latest = self._manager.latest_checkpoint
        if latest and latest.endswith(f"-{step}"):
            return latest
        with preemption.signals_held():  # Ctrl-C or SIGTERM act after the write, not halfway
            return self._manager.save(checkpoint_number=step)

    def save_best(self, step, metric, value):
        """Writes the best-model checkpoint and its record."""
        with preemption.signals_held():  # Ctrl-C or SIGTERM act after the checkpoint and its record
            self._best.save(checkpoint_number=step)
            with tf.io.gfile.GFile(os.path.join(self.write_dir, BEST_DIR, BEST_RECORD), "w") as f:
                json.dump({"metric": metric, "value": value, "step": step}, f)

    def best_value(self):
        """The tracked metric's best value recorded in model_dir (a resumed run), or None."""
        path = os.path.join(self.model_dir, BEST_DIR, BEST_RECORD)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)["value"]

    def restore_best(self, model):
        """Loads this process's best checkpoint into `model`; returns its path or None."""
        best_dir = os.path.join(self.write_dir, BEST_DIR)
        if not tf.io.gfile.exists(os.path.join(best_dir, "checkpoint")):
            return None
        return restore_model_weights(model, best_dir)


def default_best_mode(metric: str | None) -> str:
    """"min" for a loss or a perplexity (lower is better), "max" for any other metric."""
    return "min" if metric and metric.endswith(("loss", "perplexity")) else "max"


class BestTracker(tf.train.experimental.PythonState):
    """Follows one log value across evaluations: its best, the evaluations since, and each evaluation.

    It is part of every step checkpoint (a JSON string), so a resumed run continues with the best
    value, the early-stopping count and the evaluation record it had at that step.

    Args:
      metric: str or None. The log key (e.g. "val_accuracy"); None tracks nothing.
      mode: str. "max" or "min".
      best: float or None. The best value so far. Defaults to None.
    """

    def __init__(self, metric, mode, best=None):
        self.metric, self.mode, self.best = metric, mode, best
        self.evaluations_without_improvement = 0
        self.evaluations = []  # {"step", "epoch", "val_...": value} per evaluation, in order
        self.restored = False

    def tracks(self, logs):
        """Whether `logs` holds the tracked metric."""
        return self.metric is not None and self.metric in logs

    def update(self, logs):
        """Records one evaluation's logs; returns True when the tracked metric improved.

        Logs without the tracked metric change nothing (e.g. `loss` is only in epoch-end logs).
        """
        if not self.tracks(logs):
            return False
        value = float(logs[self.metric])
        improved = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if improved:
            self.best = value
        self.evaluations_without_improvement = 0 if improved else self.evaluations_without_improvement + 1
        return improved

    def record(self, step, epoch, logs):
        """Appends an evaluation (scalar logs at optimizer step `step`, `epoch` epochs done)."""
        self.evaluations.append({"step": int(step), "epoch": round(float(epoch), 4),
                                 **{key: float(value) for key, value in logs.items()}})

    def continue_from(self, previous):
        """Takes over an earlier phase's best value (of the same metric) and evaluation record.

        The count of evaluations without improvement starts again: a new phase gets its full patience.
        """
        if previous.metric == self.metric and previous.mode == self.mode:
            self.best = previous.best
        self.evaluations = [dict(e) for e in previous.evaluations]

    def serialize(self):
        return json.dumps({"best": self.best, "evaluations": self.evaluations,
                           "evaluations_without_improvement": self.evaluations_without_improvement})

    def deserialize(self, string_value):
        state = json.loads(string_value.numpy() if hasattr(string_value, "numpy") else string_value)
        self.best, self.evaluations = state["best"], state["evaluations"]
        self.evaluations_without_improvement = state["evaluations_without_improvement"]
        self.restored = True
