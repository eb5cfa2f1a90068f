"""Trainer: a custom step loop that trains Keras models the same way under every tf.distribute strategy.

Keras 3 `Model.fit` fails under MultiWorkerMirroredStrategy, so the Trainer owns its loop:
a `tf.function` around `strategy.run`, losses on float32 logits divided by the global number
of examples (or of mask weights for masked-LM), `optimizer.apply`, sums reduced across replicas.

Input contract: every replica of every worker reads the same global batch from its own
checkpointable iterator and keeps its slice, so datasets must be deterministic (seeded shuffles)
and identical on all workers. Do not shard them per worker.
"""
import atexit
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfmodels.training import distribute
from tfmodels.training.dropout import use_fast_dropout
from tfmodels.training import metrics as metrics_lib
from tfmodels.training import optimization
from tfmodels.training import steps as steps_lib

logger = logging.getLogger(__name__)

TASKS = ("classification", "mlm")
BEST_MODES = ("max", "min")
_SUM = tf.distribute.ReduceOp.SUM


class TrainerConfigError(ValueError):
    """A Trainer argument is invalid."""


class CheckpointRestoreError(ValueError):
    """The latest checkpoint of model_dir cannot be restored (corrupt, or another model's)."""


class NonFiniteLossError(ValueError):
    """The training loss became NaN or Inf; no checkpoint was written for the bad state."""


def unpack_batch(batch):
    """Splits a batch into (features, labels, sample_weight); missing parts are None.

    Args:
      batch: features, (features,), (features, labels) or (features, labels, sample_weight).
    """
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None, None
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return tuple(batch)
        raise TrainerConfigError(
            f"a batch must be x, (x, y) or (x, y, sample_weight); got a tuple of {len(batch)}")
    return batch, None, None


def _replica_slice(tensor, replica_id, num_replicas):
    """Returns this replica's contiguous share of the leading (batch) axis of `tensor`."""
    size = tf.shape(tensor)[0]
    start = (size * replica_id) // num_replicas
    end = (size * (replica_id + 1)) // num_replicas
    return tensor[start:end]


def _local_batch(batch):
    """Returns the slice of a global batch that belongs to the current replica."""
    context = tf.distribute.get_replica_context()
    num_replicas = context.num_replicas_in_sync
    if num_replicas == 1:
        return batch
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return tf.nest.map_structure(lambda t: _replica_slice(t, replica_id, num_replicas), batch)


def _batch_size(features):
    """Returns the batch size (float32) of a features structure."""
    return tf.cast(tf.shape(tf.nest.flatten(features)[0])[0], tf.float32)


def _token_count(features):
    """Returns the number of real tokens (padding_mask ones), or 0 without a padding_mask."""
    if isinstance(features, dict) and "padding_mask" in features:
        return tf.reduce_sum(tf.cast(features["padding_mask"], tf.float32))
    return tf.constant(0.0)


def classification_loss_sum(labels, logits, sample_weight=None, label_smoothing=0.0):
    """Returns the sum over the batch of (label-smoothed) cross-entropy on float32 logits.

    Args:
      labels: int tensor [B]. Class ids.
      logits: float tensor [B, C].
      sample_weight: float tensor [B] or None. Defaults to None.
      label_smoothing: float. Mass spread uniformly over all classes. Defaults to 0.0.
    """
    logits = tf.cast(logits, tf.float32)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    one_hot = tf.one_hot(tf.reshape(tf.cast(labels, tf.int32), [-1]), tf.shape(logits)[-1],
                         dtype=tf.float32)
    per_example = -tf.reduce_sum(one_hot * log_probs, axis=-1)
    if label_smoothing:
        uniform = -tf.reduce_mean(log_probs, axis=-1)
        per_example = (1.0 - label_smoothing) * per_example + label_smoothing * uniform
    if sample_weight is not None:
        per_example = per_example * tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return tf.reduce_sum(per_example)


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
        raise TrainerConfigError(f"no checkpoint found in {path!r}")
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    return prefix


def _all_trainable_capable_variables(model):
    """Returns every variable that is trainable when its layer is (frozen layers included)."""
    seen, variables = set(), []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for variable in getattr(layer, "_trainable_variables", []):
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    for variable in model.trainable_variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    return variables


def _rng_state_variables(model):
    """Returns the seed-generator state variables (dropout RNG) not in model.weights."""
    weight_ids = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weight_ids]


class _Progress:
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


class Trainer:
    """Trains, evaluates and predicts with a Keras model under any tf.distribute strategy.

    Build the model (and optimizer, if you pass one) inside `strategy.scope()` of the same
    strategy you give here, or use `Trainer.from_builder`, which does it for you.

    Checkpoints (model, optimizer, step, epoch, data iterator, dropout RNG state) go to
    `model_dir` every `checkpoint_every_steps` steps and at each epoch end (keeping
    `keep_checkpoints`); calling `fit` again with the same `model_dir` resumes at the exact
    step. The best model by `best_metric` goes to `model_dir/best/`. TensorBoard scalars go to
    `model_dir/train` and `model_dir/validation`. Under multi-worker training only the chief
    writes `model_dir`; other workers write to a temporary directory removed when the process exits.

    Changing trainability during training (e.g. a gradual-unfreezing callback setting
    `layer.trainable`) is detected before each step call, which re-traces the step with the new
    trainable variables; `on_trainability_changed()` forces it. The optimizer is built for all
    variables that can become trainable, so frozen layers can be unfrozen later.

    Args:
      model: keras.Model. Takes the features dict, returns logits ([B, C] for classification,
        [B, P, V] for mlm).
      optimizer: keras optimizer or None. Defaults to build_optimizer("adamw", 1e-3,
        decay="constant"). An unbuilt optimizer created outside `strategy.scope()` is
        re-created from its config inside it. With a mixed_float16 policy it is wrapped in LossScaleOptimizer.
      task: str. "classification" or "mlm". Defaults to "classification".
      strategy: tf.distribute.Strategy or None. Defaults to the current strategy.
      model_dir: str or None. Where checkpoints and summaries go; None writes nothing.
      label_smoothing: float. Classification label smoothing. Defaults to 0.0.
      grad_accum_steps: int. Micro-batches summed into one optimizer step. Defaults to 1.
      checkpoint_every_steps: int or None. Step interval between checkpoints. Defaults to None
        (epoch ends only).
      keep_checkpoints: int. Step checkpoints kept. Defaults to 3.
      log_every_steps: int. Steps between log lines and TensorBoard scalars. Defaults to 50.
      best_metric: str or None. Epoch log key selecting `model_dir/best/` and early stopping.
        Defaults to "val_accuracy".
      best_mode: str. "max" or "min". Defaults to "max".
      early_stopping_patience: int or None. Epochs without improvement of best_metric before
        stopping. Defaults to None (never).
      steps_per_execution: int. Steps run per tf.function call. Defaults to 1.
      fast_dropout: bool. Draw the model's dropout masks with `dropout.keep_mask` (half the
        random numbers, same rate to 1/65536; see tfmodels/training/dropout.py). Defaults to True.
      seed: int or None. Seeds Python, NumPy, TF and Keras. Defaults to None.
      verbose: int. 0 silent, 1 progress bar or log lines. Defaults to 1.
    """

    def __init__(self, model, optimizer=None, *, task="classification", strategy=None,
                 model_dir=None, label_smoothing=0.0, grad_accum_steps=1,
                 checkpoint_every_steps=None, keep_checkpoints=3, log_every_steps=50,
                 best_metric="val_accuracy", best_mode="max", early_stopping_patience=None,
                 steps_per_execution=1, fast_dropout=True, seed=None, verbose=1):
        self._check_arguments(task, best_mode, grad_accum_steps, steps_per_execution,
                              label_smoothing, checkpoint_every_steps, log_every_steps)
        if seed is not None:
            keras.utils.set_random_seed(seed)
        self.model = model
        if fast_dropout:
            use_fast_dropout(model)
        self.task = task
        self.strategy = strategy or tf.distribute.get_strategy()
        self.model_dir = model_dir
        self.label_smoothing = float(label_smoothing)
        self.grad_accum_steps = int(grad_accum_steps)
        self.checkpoint_every_steps = checkpoint_every_steps
        self.keep_checkpoints = keep_checkpoints
        self.log_every_steps = int(log_every_steps)
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.early_stopping_patience = early_stopping_patience
        self.steps_per_execution = int(steps_per_execution)
        self.verbose = verbose
        self.is_chief = distribute.is_chief(self.strategy)
        with self.strategy.scope():
            self.optimizer = self._prepare_optimizer(optimizer)
            self.optimizer.build(_all_trainable_capable_variables(model))
            self.global_step = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="global_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.epoch = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="epoch",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self._data = tf.Module(name="data")
        self._train_fn = None
        self._eval_fn = None
        self._predict_fn = None
        self._trainable_signature = None
        self._own_clipnorm = None
        self._write_dir = None
        self._manager = None
        self.stop_training = False

    @classmethod
    def from_builder(cls, model_fn, optimizer_fn=None, *, strategy=None, seed=None, **kwargs):
        """Builds the model (and optimizer) inside `strategy.scope()`, then the Trainer.

        Args:
          model_fn: callable returning a keras.Model.
          optimizer_fn: callable returning an optimizer, or None for the default.
          strategy: tf.distribute.Strategy or None. Defaults to the current strategy.
          seed: int or None. Seeds everything before the model is built. Defaults to None.
          **kwargs: other Trainer arguments.

        Example:
          >>> trainer = Trainer.from_builder(lambda: build_mlp(...), strategy=get_strategy("mirrored"))
        """
        strategy = strategy or tf.distribute.get_strategy()
        if seed is not None:
            keras.utils.set_random_seed(seed)
        with strategy.scope():
            model = model_fn()
            optimizer = optimizer_fn() if optimizer_fn else None
        return cls(model, optimizer, strategy=strategy, seed=seed, **kwargs)

    @staticmethod
    def _check_arguments(task, best_mode, grad_accum_steps, steps_per_execution,
                         label_smoothing, checkpoint_every_steps, log_every_steps):
        if task not in TASKS:
            raise TrainerConfigError(f"task {task!r} unknown; choose one of {', '.join(TASKS)}")
        if best_mode not in BEST_MODES:
            raise TrainerConfigError(f"best_mode {best_mode!r} unknown; choose one of max, min")
        for name, value in (("grad_accum_steps", grad_accum_steps),
                            ("steps_per_execution", steps_per_execution),
                            ("log_every_steps", log_every_steps)):
            if not isinstance(value, int) or value < 1:
                raise TrainerConfigError(f"{name} must be an int >= 1; got {value!r}")
        if checkpoint_every_steps is not None and checkpoint_every_steps < 1:
            raise TrainerConfigError(
                f"checkpoint_every_steps must be >= 1 or None; got {checkpoint_every_steps!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise TrainerConfigError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}")

    def _prepare_optimizer(self, optimizer):
        """Returns the optimizer, defaulted and loss-scaled for a mixed_float16 policy."""
        if optimizer is None:
            optimizer = optimization.build_optimizer("adamw", 1e-3, decay="constant")
        elif getattr(optimizer, "_distribution_strategy", self.strategy) is not self.strategy:
            if optimizer.built:
                raise TrainerConfigError(
                    "the optimizer was built under another strategy; build it inside "
                    "strategy.scope() of the Trainer's strategy")
            # Keras optimizers bind the strategy current at construction: re-create in scope.
            optimizer = optimizer.__class__.from_config(optimizer.get_config())
        policy = self.model.dtype_policy.name if hasattr(self.model, "dtype_policy") else ""
        is_float16 = "float16" in policy and "bfloat16" not in policy
        if is_float16 and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    @property
    def _inner_optimizer(self):
        return getattr(self.optimizer, "inner_optimizer", self.optimizer)

    @property
    def _loss_scaled(self):
        return isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)

    def on_trainability_changed(self):
        """Forces the train step to re-trace with the model's current trainable variables."""
        self._train_fn = None
        self._trainable_signature = None

    def _check_trainability(self):
        """Re-traces the train step when the set of trainable variables changed."""
        signature = tuple(id(v) for v in self.model.trainable_variables)
        if signature != self._trainable_signature:
            known = {id(v) for v in self._inner_optimizer._trainable_variables}
            unknown = [v.path for v in self.model.trainable_variables if id(v) not in known]
            if unknown:
                raise TrainerConfigError(
                    f"trainable variables {unknown[:3]} were created after the Trainer; "
                    "create them (e.g. enable LoRA) before building the Trainer")
            self._trainable_signature = signature
            self._train_fn = None

    # ---------------------------------------------------------------- losses and steps

    def _loss_parts(self, labels, logits, sample_weight):
        """Returns (loss_sum, denominator, metric_numerator, metric_denominator) of a local batch."""
        logits = tf.cast(logits, tf.float32)
        if self.task == "mlm":
            weights = (tf.ones(tf.shape(labels), tf.float32) if sample_weight is None
                       else tf.cast(sample_weight, tf.float32))
            nll_sum, correct, weight_sum = metrics_lib.masked_lm_batch_sums(labels, logits, weights)
            return nll_sum, weight_sum, correct, weight_sum
        loss_sum = classification_loss_sum(labels, logits, sample_weight, self.label_smoothing)
        count = tf.cast(tf.shape(logits)[0], tf.float32)
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(
            tf.equal(predictions, tf.reshape(tf.cast(labels, tf.int32), [-1])), tf.float32))
        return loss_sum, count, correct, count

    def _loss_denominator(self, features, labels, sample_weight):
        """Returns the local loss denominator: examples, or the sum of mask weights for mlm."""
        if self.task == "mlm":
            if sample_weight is None:
                return tf.cast(tf.size(labels), tf.float32)
            return tf.reduce_sum(tf.cast(sample_weight, tf.float32))
        return _batch_size(features)

    def _replica_train_step(self, micro_batches, variables):
        """Computes accumulated gradients over micro-batches and applies them (replica context)."""
        context = tf.distribute.get_replica_context()
        local = [unpack_batch(_local_batch(batch)) for batch in micro_batches]
        local_denominator = tf.add_n([self._loss_denominator(*parts) for parts in local])
        denominator = tf.maximum(context.all_reduce(_SUM, local_denominator), 1e-12)
        regularization_share = float(context.num_replicas_in_sync * len(local))
        gradients = None
        stats = {name: tf.constant(0.0) for name in
                 ("loss_sum", "denominator", "correct", "count", "examples", "tokens")}
        for features, labels, sample_weight in local:
            with tf.GradientTape() as tape:
                logits = self.model(features, training=True)
                loss_sum, batch_denominator, correct, count = self._loss_parts(
                    labels, logits, sample_weight)
                loss = loss_sum / denominator
                if self.model.losses:
                    loss += tf.add_n([tf.cast(l, tf.float32) for l in self.model.losses]) / (
                        regularization_share)
                if self._loss_scaled:
                    loss = self.optimizer.scale_loss(loss)
            step_gradients = tape.gradient(loss, variables)
            if gradients is None:
                gradients = step_gradients
            else:
                gradients = [g if a is None else (a if g is None else a + g)
                             for a, g in zip(gradients, step_gradients)]
            for name, value in (("loss_sum", loss_sum), ("denominator", batch_denominator),
                                ("correct", correct), ("count", count),
                                ("examples", _batch_size(features)),
                                ("tokens", _token_count(features))):
                stats[name] += value
        if self._own_clipnorm:
            gradients = self._clip_across_replicas(context, gradients)
        # Variables the loss does not reach (e.g. the BERT pooler under mean pooling) get no update.
        present = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        self.optimizer.apply([g for g, _ in present], [v for _, v in present])
        return stats

    def _clip_across_replicas(self, context, gradients):
        """Clips the all-reduced gradient by global norm; returns per-replica shares of it."""
        present = [i for i, g in enumerate(gradients) if g is not None]
        summed = context.all_reduce(_SUM, [gradients[i] for i in present])
        clipped, _ = tf.clip_by_global_norm(summed, self._own_clipnorm)
        shares = list(gradients)
        for i, gradient in zip(present, clipped):
            shares[i] = gradient / context.num_replicas_in_sync
        return shares

    def _make_train_fn(self):
        """Returns a tf.function running `num_steps` optimizer steps from an iterator."""
        variables = list(self.model.trainable_variables)
        accumulation = self.grad_accum_steps

        def replica_step(micro_batches):
            return self._replica_train_step(micro_batches, variables)

        def train_fn(iterator, num_steps):
            totals = {name: tf.constant(0.0) for name in
                      ("loss_sum", "denominator", "correct", "count", "examples", "tokens")}
            first_bad_step = tf.constant(-1, tf.int64)
            for _ in tf.range(num_steps):
                micro_batches = tuple(next(iterator) for _ in range(accumulation))
                per_replica = self.strategy.run(replica_step, args=(micro_batches,))
                stats = {name: self.strategy.reduce(_SUM, value, axis=None)
                         for name, value in per_replica.items()}
                self.global_step.assign_add(1)
                loss = stats["loss_sum"] / tf.maximum(stats["denominator"], 1e-12)
                totals = {name: totals[name] + stats[name] for name in totals}
                if not tf.math.is_finite(loss):
                    first_bad_step = self.global_step.read_value()
                    break
            return totals, first_bad_step

        return tf.function(train_fn, reduce_retracing=True)

    def _replica_eval_step(self, batch):
        """Returns the local sums of loss and metrics of one batch (replica context)."""
        features, labels, sample_weight = unpack_batch(_local_batch(batch))
        logits = tf.cast(self.model(features, training=False), tf.float32)
        loss_sum, denominator, correct, count = self._loss_parts(labels, logits, sample_weight)
        if self.task == "mlm":
            return {"nll_sum": loss_sum, "correct": correct, "weight_sum": denominator}
        confusion = metrics_lib.confusion_matrix_batch(labels, logits, logits.shape[-1],
                                                       sample_weight)
        return {"loss_sum": loss_sum, "denominator": denominator, "confusion": confusion}

    def _make_eval_fn(self):
        def eval_fn(batch):
            per_replica = self.strategy.run(self._replica_eval_step, args=(batch,))
            return {name: self.strategy.reduce(_SUM, value, axis=None)
                    for name, value in per_replica.items()}
        return tf.function(eval_fn, reduce_retracing=True)

    def _make_predict_fn(self):
        def replica_predict(batch):
            features, _, _ = unpack_batch(_local_batch(batch))
            return tf.cast(self.model(features, training=False), tf.float32)

        def predict_fn(batch):
            per_replica = self.strategy.run(replica_predict, args=(batch,))
            return self.strategy.gather(per_replica, axis=0)
        return tf.function(predict_fn, reduce_retracing=True)

    # ---------------------------------------------------------------- evaluate / predict

    def evaluate(self, data):
        """Returns metrics over a finite dataset.

        Classification: loss, accuracy, macro_precision, macro_recall, macro_f1 and
        confusion_matrix (np.ndarray, rows = true class). mlm: loss, accuracy, perplexity.

        Args:
          data: tf.data.Dataset of (x, y) or (x, y, sample_weight) global batches.
        """
        if self._eval_fn is None:
            self._eval_fn = self._make_eval_fn()
        accumulator = None
        for batch in data:
            sums = {name: value.numpy() for name, value in self._eval_fn(batch).items()}
            if self.task == "mlm":
                accumulator = accumulator or metrics_lib.MaskedLMMetrics()
                accumulator.update(sums["nll_sum"], sums["correct"], sums["weight_sum"])
            else:
                accumulator = accumulator or metrics_lib.ClassificationMetrics(
                    sums["confusion"].shape[0])
                accumulator.update(sums["confusion"], sums["loss_sum"], sums["denominator"])
        if accumulator is None:
            raise TrainerConfigError("evaluate() got an empty dataset")
        return accumulator.result()

    def predict(self, data):
        """Returns float32 logits for every example of a finite dataset, in order.

        Args:
          data: tf.data.Dataset yielding features or (features, ...) batches.
        """
        if self._predict_fn is None:
            self._predict_fn = self._make_predict_fn()
        outputs = [self._predict_fn(batch).numpy() for batch in data]
        return np.concatenate(outputs, axis=0)

    # ---------------------------------------------------------------- checkpoints

    def _setup_checkpointing(self):
        """Creates the checkpoint, its manager and the best-model manager for this process."""
        if not self.model_dir:
            return
        if self.is_chief:
            self._write_dir = self.model_dir
        elif self._write_dir is None:
            # Kept until the process exits: restore_best() reads this worker's own best/ copy.
            root = tempfile.mkdtemp(prefix="tfmodels_")
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            self._write_dir = os.path.join(root, distribute.worker_id(self.strategy))
        self._checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, global_step=self.global_step,
            epoch=self.epoch, data=self._data, rng=_rng_state_variables(self.model))
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, self._write_dir, max_to_keep=self.keep_checkpoints,
            checkpoint_name="ckpt")
        self._best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=self.model), os.path.join(self._write_dir, "best"),
            max_to_keep=1, checkpoint_name="best")

    def _restore_latest(self):
        """Restores the newest checkpoint of model_dir (the chief's), if any; returns its path."""
        if not self.model_dir:
            return None
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
            logger.info("Resumed from %s at step %d", path, int(self.global_step.numpy()))
            if self.verbose:  # a resumed run says so on its console, not only in the logs
                print(f"resumed from {path} at step {int(self.global_step.numpy())}", flush=True)
        return path

    def _save(self):
        """Writes a step checkpoint unless one exists for the current step."""
        if self._manager is None:
            return
        step = int(self.global_step.numpy())
        if self._manager.latest_checkpoint and self._manager.latest_checkpoint.endswith(f"-{step}"):
            return
        self._manager.save(checkpoint_number=step)

    # ---------------------------------------------------------------- fit

    def _plan(self, train_data, epochs, steps, steps_per_epoch):
        """Returns the run's StepPlan (tfmodels.training.steps) for this dataset."""
        if steps_per_epoch is None:
            cardinality = int(train_data.cardinality().numpy())
            if cardinality == tf.data.INFINITE_CARDINALITY and steps is None:
                raise TrainerConfigError("an infinite train_data needs steps= or steps_per_epoch=")
            if cardinality >= 0:
                steps_per_epoch = steps_lib.optimizer_steps_per_epoch(cardinality, self.grad_accum_steps)
            elif cardinality != tf.data.INFINITE_CARDINALITY:  # unknown: epochs end with the data
                return steps_lib.StepPlan(epochs or 1, steps, None)
        return steps_lib.plan_steps(epochs, steps, steps_per_epoch)

    def _iterator_for(self, train_data, repeat):
        """The training iterator: kept when `fit` is called again on the same dataset."""
        source = (train_data, repeat)
        if getattr(self, "_iterator_source", None) != source or not hasattr(self._data, "iterator"):
            self._iterator_source = source
            self._data.iterator = iter(train_data.repeat() if repeat else train_data)
        return self._data.iterator

    def _set_iterator(self, dataset):
        self._data.iterator = iter(dataset)
        return self._data.iterator

    def fit(self, train_data, validation_data=None, epochs=None, steps=None,
            steps_per_epoch=None, callbacks=None):
        """Trains the model; resumes from model_dir's latest checkpoint when there is one.

        `steps` and `epochs` are totals counted from step 0 (tfmodels/training/steps.py): a resumed
        run stops at the same step as an uninterrupted one, and calling `fit` again continues
        training up to the new totals (`fit(ds, steps=3)` then `fit(ds, steps=15)` ends at step 15;
        the same dataset object continues where the last call left its data).

        Args:
          train_data: tf.data.Dataset of global batches (x, y) or (x, y, sample_weight). Must be
            deterministic and identical on all workers.
          validation_data: tf.data.Dataset or None. Evaluated at each epoch end (val_* logs).
          epochs: int or None. Epochs of the whole run. Defaults to 1, or enough epochs for `steps`.
          steps: int or None. Optimizer steps of the whole run; with `epochs` too, the first
            reached ends the run.
          steps_per_epoch: int or None. Optimizer steps per epoch; defaults to the dataset's
            batches // grad_accum_steps, else an epoch ends when the data runs out.
          callbacks: list of keras.callbacks.Callback or None.

        Returns:
          dict of str to list: per-epoch logs of this call (loss, accuracy, val_*, ...).
        """
        plan = self._plan(train_data, epochs, steps, steps_per_epoch)
        self._own_clipnorm = None
        inner = self._inner_optimizer
        saved_clipnorm = inner.global_clipnorm
        if self.strategy.num_replicas_in_sync > 1 and saved_clipnorm and not self._loss_scaled:
            self._own_clipnorm, inner.global_clipnorm = saved_clipnorm, None
            self._train_fn = None
        self._setup_checkpointing()
        if getattr(self.model, "optimizer", None) is None:
            # Keras callbacks (TensorBoard) read model.optimizer; bypass tracking so model-only
            # checkpoints stay model-only.
            object.__setattr__(self.model, "optimizer", self.optimizer)
        callback_list = keras.callbacks.CallbackList(callbacks or [], model=self.model)
        callback_list.set_params({"epochs": plan.epochs, "steps": plan.steps_per_epoch, "verbose": 0})
        self.model.stop_training = False
        writers = self._summary_writers()
        repeat = plan.steps_per_epoch is not None
        iterator = self._iterator_for(train_data, repeat)
        self._restore_latest()
        history = {}
        try:
            callback_list.on_train_begin()
            self._fit_epochs(train_data, validation_data, plan, iterator, callback_list, writers,
                             history)
            callback_list.on_train_end(_last_logs(history))
            if self.verbose and distribute.num_workers(self.strategy) > 1:
                # Workers apply the same all-reduced updates, so their weights must be identical.
                print(f"{distribute.worker_id(self.strategy)}: weights digest {self.weights_digest()}",
                      flush=True)
        finally:
            inner.global_clipnorm = saved_clipnorm
            for writer in writers.values():
                writer.close()
        return history

    def _summary_writers(self):
        if not (self.model_dir and self.is_chief):
            return {}
        return {name: tf.summary.create_file_writer(os.path.join(self.model_dir, name))
                for name in ("train", "validation")}

    def _next_epoch(self, plan):
        """The epoch to run next, or None when the plan is complete."""
        step = int(self.global_step.numpy())
        if plan.total_steps is not None and step >= plan.total_steps:
            return None
        epoch = plan.epoch_of(step) if plan.steps_per_epoch else int(self.epoch.numpy())
        return epoch if epoch < plan.epochs else None

    def _fit_epochs(self, train_data, validation_data, plan, iterator, callback_list, writers,
                    history):
        best_value, epochs_without_improvement = self._best_state()
        first_epoch = True
        if self._next_epoch(plan) is None and self.verbose:
            print(f"already at step {int(self.global_step.numpy())} (epoch {int(self.epoch.numpy())}): "
                  f"the run's {plan.total_steps or plan.epochs} {'steps' if plan.total_steps else 'epochs'} "
                  "are done; pass larger totals to train on", flush=True)
        while (epoch := self._next_epoch(plan)) is not None:
            if plan.steps_per_epoch is None and not first_epoch:
                iterator = self._set_iterator(train_data)
            first_epoch = False
            callback_list.on_epoch_begin(epoch)
            logs, completed = self._run_epoch(iterator, epoch, plan, callback_list, writers)
            if validation_data is not None:
                val = self.evaluate(validation_data)
                logs.update({f"val_{k}": v for k, v in val.items() if k != "confusion_matrix"})
                self._write_scalars(writers.get("validation"), val)
                if self.verbose:
                    values = " ".join(f"{k}={v:.4g}" for k, v in val.items() if np.isscalar(v))
                    print(f"epoch {epoch + 1}/{plan.epochs} validation: {values}", flush=True)
            if completed:
                self.epoch.assign(epoch + 1)
            self._save()
            best_value, improved = self._update_best(logs, best_value)
            epochs_without_improvement = 0 if improved else epochs_without_improvement + 1
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            callback_list.on_epoch_end(epoch, logs)
            if (self.early_stopping_patience is not None and self._has_best_metric(logs)
                    and epochs_without_improvement >= self.early_stopping_patience):
                logger.info("Early stopping: %s did not improve for %d epochs", self.best_metric,
                            epochs_without_improvement)
                break
            if self.model.stop_training or not completed:
                break

    def weights_digest(self):
        """A SHA-256 over the model's weights: equal digests mean bit-identical weights."""
        digest = hashlib.sha256()
        for variable in self.model.weights:
            digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
        return digest.hexdigest()[:16]

    def restore_best(self):
        """Loads the best checkpoint's weights (`model_dir/best/`) into the model.

        Returns:
          str or None. The checkpoint loaded, or None when no best checkpoint was written.
        """
        # Every worker reads its own copy: the chief's may still be being written.
        write_dir = self._write_dir or self.model_dir
        best_dir = os.path.join(write_dir, "best") if write_dir else None
        if best_dir is None or not tf.io.gfile.exists(os.path.join(best_dir, "checkpoint")):
            return None
        return restore_model_weights(self.model, best_dir)

    def _best_state(self):
        """Returns (best value so far, 0), reading model_dir/best/best.json when resuming."""
        if self.model_dir:
            path = os.path.join(self.model_dir, "best", "best.json")
            if tf.io.gfile.exists(path):
                with tf.io.gfile.GFile(path) as f:
                    return json.load(f)["value"], 0
        return None, 0

    def _has_best_metric(self, logs):
        return self.best_metric is not None and self.best_metric in logs

    def _update_best(self, logs, best_value):
        """Saves model_dir/best/ when best_metric improved; returns (best, improved)."""
        if not self._has_best_metric(logs):
            return best_value, False
        value = float(logs[self.best_metric])
        better = best_value is None or (value > best_value if self.best_mode == "max"
                                        else value < best_value)
        if not better:
            return best_value, False
        if self._manager is not None:
            step = int(self.global_step.numpy())
            self._best_manager.save(checkpoint_number=step)
            with tf.io.gfile.GFile(os.path.join(self._write_dir, "best", "best.json"), "w") as f:
                json.dump({"metric": self.best_metric, "value": value, "step": step}, f)
        return value, True

    def _steps_this_call(self, step, epoch_end, total_steps):
        """Returns how many steps the next tf.function call may run without crossing a boundary."""
        limit = self.steps_per_execution
        if epoch_end is not None:
            limit = min(limit, epoch_end - step)
        if total_steps is not None:
            limit = min(limit, total_steps - step)
        if self.checkpoint_every_steps:
            limit = min(limit, self.checkpoint_every_steps - step % self.checkpoint_every_steps)
        return limit

    def _run_epoch(self, iterator, epoch, plan, callback_list, writers):
        """Runs (the rest of) one epoch; returns (logs, whether the epoch completed)."""
        start_step = int(self.global_step.numpy())
        steps_per_epoch = plan.steps_per_epoch
        epoch_start = epoch * steps_per_epoch if steps_per_epoch is not None else start_step
        epoch_end = plan.epoch_end(start_step) if steps_per_epoch is not None else None
        progress = _Progress(self.verbose, steps_per_epoch, epoch, plan.epochs)
        epoch_totals = _Totals()
        interval_totals = _Totals()
        completed = False
        last_log_step = start_step
        while True:
            step = int(self.global_step.numpy())
            num_steps = self._steps_this_call(step, epoch_end, plan.total_steps)
            if num_steps <= 0:
                completed = steps_per_epoch is not None and step >= epoch_start + steps_per_epoch
                break
            self._check_trainability()
            if self._train_fn is None:
                self._train_fn = self._make_train_fn()
            started = time.perf_counter()
            try:
                totals, first_bad_step = self._train_fn(iterator, tf.constant(num_steps, tf.int64))
            except tf.errors.OutOfRangeError:
                completed = True
                break
            totals = {name: float(value) for name, value in totals.items()}
            elapsed = time.perf_counter() - started
            step = int(self.global_step.numpy())
            if int(first_bad_step) >= 0:
                self._raise_non_finite(int(first_bad_step), totals)
            epoch_totals.add(totals, elapsed, num_steps)
            interval_totals.add(totals, elapsed, num_steps)
            if self.checkpoint_every_steps and step % self.checkpoint_every_steps == 0:
                self._save()
            log_now = step - last_log_step >= self.log_every_steps
            step_logs = interval_totals.logs(self.task)
            if log_now:
                self._write_train_scalars(writers.get("train"), interval_totals, step)
                interval_totals = _Totals()
                last_log_step = step
            progress.update(step - epoch_start, step, step_logs, log_now)
            callback_list.on_train_batch_end(step - epoch_start - 1, step_logs)
            if self.model.stop_training:
                break
        if interval_totals.steps:
            self._write_train_scalars(writers.get("train"), interval_totals,
                                      int(self.global_step.numpy()))
        logs = epoch_totals.logs(self.task, with_speed=True)
        progress.end(logs)
        return logs, completed

    def _raise_non_finite(self, bad_step, totals):
        loss = totals["loss_sum"] / max(totals["denominator"], 1e-12)
        last_good = self._manager.latest_checkpoint if self._manager else None
        raise NonFiniteLossError(
            f"loss is {loss} at step {bad_step}; last good checkpoint: {last_good}")

    def _write_train_scalars(self, writer, totals, step):
        if writer is None:
            return
        with writer.as_default(step=step):
            for key, value in totals.logs(self.task, with_speed=True).items():
                tf.summary.scalar(key, value)
            tf.summary.scalar("learning_rate", float(self._current_learning_rate()))

    def _write_scalars(self, writer, values):
        if writer is None:
            return
        with writer.as_default(step=int(self.global_step.numpy())):
            for key, value in values.items():
                if np.isscalar(value):
                    tf.summary.scalar(key, value)

    def _current_learning_rate(self):
        learning_rate = self._inner_optimizer.learning_rate
        return learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate


class _Totals:
    """Host-side sums of training statistics over several steps."""

    def __init__(self):
        self.values = {}
        self.seconds = 0.0
        self.steps = 0

    def add(self, totals, seconds, steps):
        for name, value in totals.items():
            self.values[name] = self.values.get(name, 0.0) + value
        self.seconds += seconds
        self.steps += steps

    def logs(self, task, with_speed=False):
        if not self.values:
            return {}
        logs = {"loss": self.values["loss_sum"] / max(self.values["denominator"], 1e-12),
                "accuracy": self.values["correct"] / max(self.values["count"], 1e-12)}
        if task == "mlm":
            logs["perplexity"] = math.exp(min(logs["loss"], 700.0))
        if with_speed and self.seconds > 0:
            logs["examples_per_second"] = self.values["examples"] / self.seconds
            logs["step_time_seconds"] = self.seconds / self.steps
            if self.values["tokens"]:
                logs["tokens_per_second"] = self.values["tokens"] / self.seconds
        return logs


def _last_logs(history):
    return {key: values[-1] for key, values in history.items()}
