"""Trainer: a custom step loop that trains Keras models the same way under every tf.distribute strategy.

Keras 3 `Model.fit` fails under MultiWorkerMirroredStrategy, so the Trainer owns its loop:
a `tf.function` around `strategy.run`, losses on float32 logits with each loss term divided by its
global count (examples, mask weights, real tokens; see tfmodels/training/objectives.py),
`optimizer.apply`, sums reduced across replicas.

Input contract: every replica of every worker reads the same global batch from its own
checkpointable iterator and keeps its slice, so datasets must be deterministic (seeded shuffles)
and identical on all workers. Do not shard them per worker.
"""
import contextlib
import dataclasses
import hashlib
import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfmodels.training import checkpointing, distribute, length_parts, preemption
from tfmodels.training import optimization
from tfmodels.training import steps as steps_lib
from tfmodels.training.dropout import use_fast_dropout
from tfmodels.training.objectives import (ObjectiveError, batch_size, get_objective, global_denominators,
                                         token_count)
from tfmodels.training.progress import ConsoleProgress, StepTotals, Summaries

logger = logging.getLogger(__name__)

BEST_MODES = ("max", "min")
_SUM = tf.distribute.ReduceOp.SUM


class TrainerConfigError(ValueError):
    """A Trainer argument is invalid."""


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
    start, end = length_parts.contiguous_share(tf.shape(tensor)[0], replica_id, num_replicas)
    return tensor[start:end]


def _local_batch(batch):
    """Returns the slice of a global batch that belongs to the current replica."""
    context = tf.distribute.get_replica_context()
    num_replicas = context.num_replicas_in_sync
    if num_replicas == 1:
        return batch
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return tf.nest.map_structure(lambda t: _replica_slice(t, replica_id, num_replicas), batch)


def _float32_outputs(outputs):
    """The model's outputs (a tensor or a dict of them) with floating tensors cast to float32."""
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32) if t.dtype.is_floating else t, outputs)


def _sum_gradients(a, b):
    """a + b for gradients of one variable; None is no gradient. Two embedding gradients (IndexedSlices)
    stay sparse: their rows are concatenated, and a repeated row adds up where they are applied."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0),
                                a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


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


class Trainer:
    """Trains, evaluates and predicts with a Keras model under any tf.distribute strategy.

    Build the model (and optimizer, if you pass one) inside `strategy.scope()` of the same
    strategy you give here, or use `Trainer.from_builder`, which does it for you.

    Checkpoints (model, optimizer, step, epoch, data iterator, dropout RNG state) go to
    `model_dir` every `checkpoint_every_steps` steps and at each epoch end (keeping
    `keep_checkpoints`); calling `fit` again with the same `model_dir` resumes at the exact
    step. The validation data is evaluated at each epoch end and, with `eval_every_steps`, every N
    optimizer steps; the best model over all evaluations by `best_metric` goes to `model_dir/best/`,
    and `fit`'s history holds every evaluation (`history["evaluations"]`). TensorBoard scalars go to
    `model_dir/train` and `model_dir/validation`. Under multi-worker training only the chief
    writes `model_dir`; other workers write to a temporary directory removed when the process exits.

    Changing trainability during training (e.g. a gradual-unfreezing callback setting
    `layer.trainable`) is detected before each step call, which re-traces the step with the new
    trainable variables; `on_trainability_changed()` forces it. The optimizer is built for all
    variables that can become trainable, so frozen layers can be unfrozen later.

    With an optimizer that keeps a moving average of the weights (`build_optimizer(ema_decay=...)`,
    `trainer.ema_decay`), training steps update the trained weights, while evaluations, `best/` and
    the model after `fit` use the average; checkpoints hold both, so resume stays exact.

    Args:
      model: keras.Model. Takes the features dict, returns logits ([B, C] for classification,
        [B, P, V] for mlm) or, for electra, the dict of outputs `Electra` reads.
      optimizer: keras optimizer or None. Defaults to build_optimizer("adamw", 1e-3,
        decay="constant"). An unbuilt optimizer created outside `strategy.scope()` is
        re-created from its config inside it. With a mixed_float16 policy it is wrapped in LossScaleOptimizer.
      objective: str or tfmodels.training.objectives.Objective. "classification", "mlm" or
        "electra" (or an Objective instance): the loss terms, their denominators and the metrics.
        Defaults to "classification".
      strategy: tf.distribute.Strategy or None. Defaults to the current strategy.
      model_dir: str or None. Where checkpoints and summaries go; None writes nothing.
      label_smoothing: float. Label smoothing of the "classification" objective. Defaults to 0.0.
      grad_accum_steps: int. Micro-batches summed into one optimizer step. Defaults to 1.
      checkpoint_every_steps: int or None. Step interval between checkpoints. Defaults to None
        (epoch ends only).
      keep_checkpoints: int. Step checkpoints kept. Defaults to 3.
      log_every_steps: int. Steps between log lines and TensorBoard scalars. Defaults to 50.
      best_metric: str or None. Log key selecting `model_dir/best/` and early stopping: a val_*
        key is compared at every evaluation, a training key (e.g. "loss") at epoch ends.
        Defaults to "val_accuracy".
      best_mode: str or None. "max" or "min"; None picks "min" for a loss or perplexity and "max"
        for any other metric (`checkpointing.default_best_mode`). Defaults to None.
      early_stopping_patience: int or None. Evaluations (step or epoch) in a row without
        improvement of best_metric before training stops; `restore_best()` then loads the best
        weights. The count is checkpointed: a resumed run keeps it (and does not train on when it
        had stopped). Defaults to None (never).
      eval_every_steps: int or None. Also evaluate the validation data every N optimizer steps
        (global steps, counted from step 0; with gradient accumulation an optimizer step is
        grad_accum_steps batches). A `steps_per_execution` call never crosses such a step, so the
        evaluation is at exactly every N-th step; a step that ends an epoch is evaluated once.
        Defaults to None (epoch ends only).
      steps_per_execution: int. Steps run per tf.function call. Defaults to 1.
      length_sorted_parts: int. Run each replica's batch as this many parts of rows sorted by
        length, each padded only to its own longest row (tfmodels/training/length_parts.py): the
        step's gradient is the whole batch's, over fewer padding positions. For token models whose
        output for a row does not depend on its padding (BERT); needs a `padding_mask` feature.
        Defaults to 1 (the batch as it comes).
      fast_dropout: bool. Draw the model's dropout masks with `dropout.keep_mask` (half the
        random numbers, same rate to 1/65536; see tfmodels/training/dropout.py). Defaults to True.
      seed: int or None. Seeds Python, NumPy, TF and Keras. Defaults to None.
      verbose: int. 0 silent, 1 progress bar or log lines. Defaults to 1.
      previous_phase: Trainer or None. An earlier phase of the same run on the same model (e.g. a
        frozen-encoder warm-up) that this one continues: the steps (and epochs) of evaluations,
        console lines and TensorBoard count on from its last ones (checkpoint names keep this
        phase's own step), its evaluations and best value carry over (the patience count starts
        again), and
        `restore_best()` loads its best checkpoint when this phase found nothing better.
        Defaults to None.
    """

    def __init__(self, model, optimizer=None, *, objective="classification", strategy=None,
                 model_dir=None, label_smoothing=0.0, grad_accum_steps=1,
                 checkpoint_every_steps=None, keep_checkpoints=3, log_every_steps=50,
                 best_metric="val_accuracy", best_mode=None, early_stopping_patience=None,
                 steps_per_execution=1, fast_dropout=True, seed=None, verbose=1, eval_every_steps=None,
                 previous_phase=None, length_sorted_parts=1):
        best_mode = best_mode or checkpointing.default_best_mode(best_metric)
        self._check_arguments(best_mode, grad_accum_steps, steps_per_execution, checkpoint_every_steps,
                              log_every_steps, eval_every_steps, early_stopping_patience, length_sorted_parts)
        try:
            self.objective = get_objective(objective, label_smoothing=label_smoothing)
        except ObjectiveError as error:
            raise TrainerConfigError(str(error)) from None
        if seed is not None:
            keras.utils.set_random_seed(seed)
        self.model = model
        if fast_dropout:
            use_fast_dropout(model)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.model_dir = model_dir
        self.grad_accum_steps = int(grad_accum_steps)
        self.length_sorted_parts = int(length_sorted_parts)
        self.checkpoint_every_steps = checkpoint_every_steps
        self.keep_checkpoints = keep_checkpoints
        self.log_every_steps = int(log_every_steps)
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.early_stopping_patience = early_stopping_patience
        self.eval_every_steps = eval_every_steps
        self._best = checkpointing.BestTracker(best_metric, best_mode)
        self._previous_phase = previous_phase
        self._step_offset, self._epoch_offset = 0, 0
        if previous_phase is not None:
            self._best.continue_from(previous_phase._best)
            self._step_offset = previous_phase._step_offset + int(previous_phase.global_step.numpy())
            self._epoch_offset = previous_phase._epoch_offset + int(previous_phase.epoch.numpy())
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
        self._checkpoints = None
        self._signals = None
        self._agree_fn = None
        self._trained_weights = None  # the trained weights while the model holds their average after fit
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
    def _check_arguments(best_mode, grad_accum_steps, steps_per_execution, checkpoint_every_steps,
                         log_every_steps, eval_every_steps, early_stopping_patience, length_sorted_parts):
        if best_mode not in BEST_MODES:
            raise TrainerConfigError(f"best_mode {best_mode!r} unknown; choose one of max, min")
        for name, value in (("grad_accum_steps", grad_accum_steps),
                            ("steps_per_execution", steps_per_execution),
                            ("length_sorted_parts", length_sorted_parts),
                            ("log_every_steps", log_every_steps)):
            if not isinstance(value, int) or value < 1:
                raise TrainerConfigError(f"{name} must be an int >= 1; got {value!r}")
        if checkpoint_every_steps is not None and checkpoint_every_steps < 1:
            raise TrainerConfigError(
                f"checkpoint_every_steps must be >= 1 or None; got {checkpoint_every_steps!r}")
        for name, value in (("eval_every_steps", eval_every_steps),
                            ("early_stopping_patience", early_stopping_patience)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise TrainerConfigError(f"{name} must be an int >= 1 or None; got {value!r}")

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

    def _replica_train_step(self, micro_batches, variables):
        """Computes accumulated gradients over micro-batches and applies them (replica context)."""
        context = tf.distribute.get_replica_context()
        local = [unpack_batch(_local_batch(batch)) for batch in micro_batches]
        if self.length_sorted_parts > 1:
            local = [part for batch in local
                     for part in length_parts.split_by_length(*batch, self.length_sorted_parts)]
        local_counts = [self.objective.loss_denominators(*parts) for parts in local]
        denominators = global_denominators(
            context, {term: tf.add_n([counts[term] for counts in local_counts]) for term in local_counts[0]})
        regularization_share = float(context.num_replicas_in_sync * len(local))
        gradients = None
        stats = {name: tf.constant(0.0) for name in self._stat_names}
        for features, labels, sample_weight in local:
            with tf.GradientTape() as tape:
                outputs = _float32_outputs(self.model(features, training=True))
                loss_sums, batch_stats = self.objective.train_sums(labels, outputs, sample_weight)
                loss = self.objective.loss(loss_sums, denominators)
                if self.model.losses:
                    loss += tf.add_n([tf.cast(l, tf.float32) for l in self.model.losses]) / (
                        regularization_share)
                if self._loss_scaled:
                    loss = self.optimizer.scale_loss(loss)
            step_gradients = tape.gradient(loss, variables)
            gradients = step_gradients if gradients is None else [
                _sum_gradients(a, g) for a, g in zip(gradients, step_gradients)]
            batch_stats = dict(batch_stats, examples=batch_size(features), tokens=token_count(features))
            for name in stats:
                stats[name] += batch_stats[name]
        if self._own_clipnorm:
            gradients = self._clip_across_replicas(context, gradients)
        # Variables the loss does not reach (e.g. the BERT pooler under mean pooling) get no update.
        present = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        self.optimizer.apply([g for g, _ in present], [v for _, v in present])
        return stats

    @staticmethod
    def _check_length_parts(features):
        try:
            length_parts.check_features(features)
        except length_parts.LengthPartsError as error:
            raise TrainerConfigError(str(error)) from None

    def _clip_across_replicas(self, context, gradients):
        """Clips the all-reduced gradient by global norm; returns per-replica shares of it."""
        present = [i for i, g in enumerate(gradients) if g is not None]
        # Embedding lookups give IndexedSlices; the shares below need dense tensors.
        summed = context.all_reduce(_SUM, [tf.convert_to_tensor(gradients[i]) for i in present])
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
            totals = {name: tf.constant(0.0) for name in self._stat_names}
            first_bad_step = tf.constant(-1, tf.int64)
            for _ in tf.range(num_steps):
                micro_batches = tuple(next(iterator) for _ in range(accumulation))
                per_replica = self.strategy.run(replica_step, args=(micro_batches,))
                stats = {name: self.strategy.reduce(_SUM, value, axis=None)
                         for name, value in per_replica.items()}
                self.global_step.assign_add(1)
                totals = {name: totals[name] + stats[name] for name in totals}
                # The loss is a ratio of these sums: it is finite when they all are.
                if not tf.reduce_all(tf.math.is_finite(tf.stack(list(stats.values())))):
                    first_bad_step = self.global_step.read_value()
                    break
            return totals, first_bad_step

        return tf.function(train_fn, reduce_retracing=True)

    @property
    def _stat_names(self):
        """The statistics a train step sums: the objective's, then examples and real tokens."""
        return tuple(self.objective.stat_names) + ("examples", "tokens")

    def _replica_eval_step(self, batch):
        """Returns the local sums of loss and metrics of one batch (replica context)."""
        features, labels, sample_weight = unpack_batch(_local_batch(batch))
        outputs = _float32_outputs(self.model(features, training=False))
        return self.objective.eval_sums(labels, outputs, sample_weight)

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
        electra: loss, generator_loss, generator_accuracy, discriminator_loss,
        discriminator_accuracy, replaced_fraction, discriminator_auc.

        Args:
          data: tf.data.Dataset of (x, y) or (x, y, sample_weight) global batches.
        """
        if self._eval_fn is None:
            self._eval_fn = self._make_eval_fn()
        metrics = None
        for batch in data:
            sums = {name: value.numpy() for name, value in self._eval_fn(batch).items()}
            metrics = metrics or self.objective.new_metrics(sums)
            self.objective.accumulate(metrics, sums)
        if metrics is None:
            raise TrainerConfigError("evaluate() got an empty dataset")
        return metrics.result()

    def predict(self, data):
        """Returns float32 logits for every example of a finite dataset, in order.

        Args:
          data: tf.data.Dataset yielding features or (features, ...) batches.
        """
        if self._predict_fn is None:
            self._predict_fn = self._make_predict_fn()
        outputs = [self._predict_fn(batch).numpy() for batch in data]
        return np.concatenate(outputs, axis=0)

    # ---------------------------------------------------------------- fit

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
          validation_data: tf.data.Dataset or None. Evaluated at each epoch end and every
            `eval_every_steps` steps (val_* logs).
          epochs: int or None. Epochs of the whole run. Defaults to 1, or enough epochs for `steps`.
          steps: int or None. Optimizer steps of the whole run; with `epochs` too, the first
            reached ends the run.
          steps_per_epoch: int or None. Optimizer steps per epoch; defaults to the dataset's
            batches // grad_accum_steps, else an epoch ends when the data runs out.
          callbacks: list of keras.callbacks.Callback or None.

        Returns:
          dict of str to list: per-epoch logs of this call (loss, accuracy, val_*, ...), and
          "evaluations": every evaluation of the run so far (earlier calls, resumed runs and a
          previous_phase included) as {"step", "epoch", "val_*": value} with the optimizer step
          and the epochs done (fractional mid-epoch).
        """
        if self.eval_every_steps and validation_data is None:
            raise TrainerConfigError(f"eval_every_steps={self.eval_every_steps} needs validation_data")
        if self.length_sorted_parts > 1:
            self._check_length_parts(unpack_batch(train_data.element_spec)[0])
        self._put_back_trained_weights()  # a second fit trains on from the trained weights, not their average
        run = _FitRun(train_data, validation_data, self._plan(train_data, epochs, steps, steps_per_epoch))
        run.callbacks = self._callback_list(callbacks, run.plan)
        run.iterator = self._iterator_for(train_data, repeat=run.plan.steps_per_epoch is not None)
        self._resume()  # after the iterator exists: the checkpoint holds its position
        run.summaries = Summaries(self.model_dir, self.is_chief)
        restore_clipnorm = self._clip_across_replicas_during_fit()
        try:
            several_workers = distribute.num_workers(self.strategy) > 1
            with preemption.SignalWatcher(defer_interrupt=several_workers) as self._signals:
                run.callbacks.on_train_begin()
                self._fit_epochs(run)
                self._hold_averaged_weights()
                run.callbacks.on_train_end(_last_logs(run.history))
                self._report_weights_digest()
                run.history["evaluations"] = self.evaluations
        finally:
            restore_clipnorm()
            run.summaries.close()
        return run.history

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

    def _callback_list(self, callbacks, plan):
        if getattr(self.model, "optimizer", None) is None:
            # Keras callbacks (TensorBoard) read model.optimizer; bypass tracking so model-only
            # checkpoints stay model-only.
            object.__setattr__(self.model, "optimizer", self.optimizer)
        callback_list = keras.callbacks.CallbackList(callbacks or [], model=self.model)
        callback_list.set_params({"epochs": plan.epochs, "steps": plan.steps_per_epoch, "verbose": 0})
        self.model.stop_training = False
        return callback_list

    def _iterator_for(self, train_data, repeat):
        """The training iterator: kept when `fit` is called again on the same dataset."""
        source = (train_data, repeat)
        if getattr(self, "_iterator_source", None) != source or not hasattr(self._data, "iterator"):
            self._iterator_source = source
            self._data.iterator = iter(train_data.repeat() if repeat else train_data)
        return self._data.iterator

    def _resume(self):
        """Opens model_dir's checkpoints and restores the newest one (the chief's), if any."""
        if not self.model_dir:
            return
        if self._checkpoints is None:
            state = dict(model=self.model, optimizer=self.optimizer, global_step=self.global_step,
                         epoch=self.epoch, data=self._data, rng=_rng_state_variables(self.model),
                         best=self._best)
            self._checkpoints = checkpointing.RunCheckpoints(self.model_dir, self.strategy, state, self.model,
                                                             self.keep_checkpoints)
        path = self._checkpoints.restore_latest()
        if path and not self._best.restored:  # a checkpoint from before the tracker was checkpointed
            self._best.best = self._checkpoints.best_value()
        if path:
            step = int(self.global_step.numpy())
            logger.info("Resumed from %s at step %d", path, step)
            if self.verbose:  # a resumed run says so on its console, not only in the logs
                print(f"resumed from {path} at step {step}", flush=True)

    def _clip_across_replicas_during_fit(self):
        """Moves global-norm clipping into the step under several replicas; returns the undo.

        Keras clips each replica's share of the gradient; the Trainer clips their all-reduced sum,
        which is what one device would clip (loss-scaled optimizers unscale first, so they keep it).
        """
        inner = self._inner_optimizer
        saved = inner.global_clipnorm
        self._own_clipnorm = None
        if self.strategy.num_replicas_in_sync > 1 and saved and not self._loss_scaled:
            self._own_clipnorm, inner.global_clipnorm = saved, None
            self._train_fn = None

        def restore():
            inner.global_clipnorm = saved
        return restore

    def _report_weights_digest(self):
        if self.verbose and distribute.num_workers(self.strategy) > 1:
            # Workers apply the same all-reduced updates, so their weights must be identical.
            print(f"{distribute.worker_id(self.strategy)}: weights digest {self.weights_digest()}", flush=True)

    def _next_epoch(self, plan):
        """The epoch to run next, or None when the plan is complete."""
        step = int(self.global_step.numpy())
        if plan.total_steps is not None and step >= plan.total_steps:
            return None
        epoch = plan.epoch_of(step) if plan.steps_per_epoch else int(self.epoch.numpy())
        return epoch if epoch < plan.epochs else None

    def _fit_epochs(self, run):
        """Runs epochs until the plan is complete, early stopping or a callback stops training."""
        if self._next_epoch(run.plan) is None and self.verbose:
            total = run.plan.total_steps or run.plan.epochs
            unit = "steps" if run.plan.total_steps else "epochs"
            print(f"already at step {int(self.global_step.numpy())} (epoch {int(self.epoch.numpy())}): the run's "
                  f"{total} {unit} are done; pass larger totals to train on", flush=True)
        if self._check_early_stopping(run):  # a resumed run that had stopped early
            return
        first_epoch = True
        while (epoch := self._next_epoch(run.plan)) is not None:
            if run.plan.steps_per_epoch is None and not first_epoch:  # epochs end with the data
                run.iterator = self._set_iterator(run.train_data)
            first_epoch = False
            run.callbacks.on_epoch_begin(epoch)
            logs, completed = self._run_epoch(run, epoch)
            if run.validation_data is not None:
                logs.update(self._evaluate(run, epoch + 1 if completed else epoch, logs))
            elif self._best_improved(logs, training_logs=True):  # e.g. best_metric="loss" without validation data
                self._save_best()
            if completed:
                self.epoch.assign(epoch + 1)
            self._save()  # after the evaluation: the checkpoint holds the tracker's state of this step
            for key, value in logs.items():
                run.history.setdefault(key, []).append(value)
            run.callbacks.on_epoch_end(epoch, logs)
            self._stop_if_signalled()
            if self._check_early_stopping(run) or self.model.stop_training or not completed:
                break

    def _set_iterator(self, dataset):
        self._data.iterator = iter(dataset)
        return self._data.iterator

    def _evaluate(self, run, epoch, train_logs=None):
        """Evaluates the validation data once per step, records it and keeps the best model.

        Args:
          run: _FitRun. The current fit call.
          epoch: int. The epoch in progress (from 0), or the epochs done at an epoch end.
          train_logs: dict or None. The epoch's training logs at an epoch end (a training
            best_metric such as "loss" is compared there).

        Returns:
          dict. The scalar validation metrics as val_* logs.
        """
        step = int(self.global_step.numpy())
        if run.last_evaluation is not None and run.last_evaluation[0] == step:
            return run.last_evaluation[1]  # already evaluated at this step (mid-epoch, or stopped early)
        with self.averaged_weights():
            values = self.evaluate(run.validation_data)
        run.summaries.validation(values, self._run_step(step))
        run.progress.validation(values, self._run_step(step))
        val_logs = {f"val_{k}": v for k, v in values.items() if k != "confusion_matrix"}
        run.last_evaluation = (step, val_logs)
        epochs_done = step / run.plan.steps_per_epoch if run.plan.steps_per_epoch else epoch
        self._best.record(self._run_step(step), self._epoch_offset + epochs_done, val_logs)
        if self._best_improved({**(train_logs or {}), **val_logs}, training_logs=train_logs is not None):
            self._save_best()
        return val_logs

    def _run_step(self, step):
        """The run's step of this phase's optimizer step `step`: evaluations, console and TensorBoard
        count on from a `previous_phase`; checkpoint names keep the phase's own step."""
        return self._step_offset + step

    def _best_improved(self, logs, training_logs):
        """Records an evaluation's logs in the best tracker; whether `best_metric` improved.

        Raises TrainerConfigError when `best_metric` is missing from logs that should hold it (a
        val_* key from validation logs; a training key from an epoch's logs): a misspelt name
        would otherwise turn off `best/` and early stopping without a word.
        """
        metric = self.best_metric
        validation_key = metric is not None and metric.startswith("val_")
        expected = any(k.startswith("val_") for k in logs) if validation_key else training_logs
        if metric is not None and metric not in logs and expected:
            raise TrainerConfigError(f"best_metric={metric!r} is not a metric this run logs; allowed: "
                                     f"{', '.join(sorted(logs))}")
        return self._best.update(logs)

    def _evaluation_due(self, run, step, epoch_end):
        """Whether an `eval_every_steps` evaluation falls on `step` (an epoch's end has its own)."""
        return (self.eval_every_steps is not None and run.validation_data is not None
                and step % self.eval_every_steps == 0 and step != epoch_end)

    def _check_early_stopping(self, run):
        """Whether to stop: best_metric did not improve for `early_stopping_patience` evaluations."""
        if (run.stopped_early or self.early_stopping_patience is None
                or self._best.evaluations_without_improvement < self.early_stopping_patience):
            return run.stopped_early
        run.stopped_early = True
        logger.info("Early stopping: %s did not improve for %d evaluations", self.best_metric,
                    self._best.evaluations_without_improvement)
        if self.verbose:
            step = self._run_step(int(self.global_step.numpy()))
            print(f"early stopping at step {step}: {self.best_metric} did not "
                  f"improve for {self._best.evaluations_without_improvement} evaluations "
                  f"(best {self._best.best:.4g})", flush=True)
        return True

    def _run_epoch(self, run, epoch):
        """Runs (the rest of) one epoch; returns (logs, whether the epoch completed)."""
        plan = run.plan
        start_step = int(self.global_step.numpy())
        epoch_start = epoch * plan.steps_per_epoch if plan.steps_per_epoch is not None else start_step
        epoch_end = plan.epoch_end(start_step) if plan.steps_per_epoch is not None else None
        run.progress = ConsoleProgress(self.verbose, plan.steps_per_epoch, self._epoch_offset + epoch,
                                       self._epoch_offset + plan.epochs)
        epoch_totals, interval_totals = StepTotals(self.objective), StepTotals(self.objective)
        completed, last_log_step = False, start_step
        while True:
            step = int(self.global_step.numpy())
            num_steps = self._steps_this_call(step, epoch_end, plan.total_steps)
            if num_steps <= 0:
                completed = epoch_end is not None and step >= epoch_start + plan.steps_per_epoch
                break
            outcome = self._train_steps(run.iterator, num_steps)
            if outcome is None:  # the data ran out: the epoch is complete
                completed = True
                break
            totals, elapsed = outcome
            step = int(self.global_step.numpy())
            epoch_totals.add(totals, elapsed, num_steps)
            interval_totals.add(totals, elapsed, num_steps)
            if self._evaluation_due(run, step, epoch_end):
                self._evaluate(run, epoch)
                self._check_early_stopping(run)
            if self._periodic_save_due(step, epoch_end, plan.total_steps):
                self._save()
            log_now = step - last_log_step >= self.log_every_steps
            step_logs = interval_totals.logs()
            if log_now:
                run.summaries.train(interval_totals, self._run_step(step), self._current_learning_rate())
                interval_totals, last_log_step = StepTotals(self.objective), step
            run.progress.update(step - epoch_start, self._run_step(step), step_logs, log_now)
            run.callbacks.on_train_batch_end(step - epoch_start - 1, step_logs)
            if step != epoch_end:  # at an epoch's end, after its evaluation (in _fit_epochs)
                self._stop_if_signalled()
            if self.model.stop_training or run.stopped_early:
                break
        if interval_totals.steps:
            run.summaries.train(interval_totals, self._run_step(int(self.global_step.numpy())),
                                self._current_learning_rate())
        logs = epoch_totals.logs(with_speed=True)
        run.progress.end(logs)
        return logs, completed

    def _periodic_save_due(self, step, epoch_end, total_steps):
        """Whether a `checkpoint_every_steps` checkpoint falls on `step`. A step that ends the epoch or
        the run is saved by `_fit_epochs` after its evaluation, so that the checkpoint records it."""
        return (bool(self.checkpoint_every_steps) and step % self.checkpoint_every_steps == 0
                and step != epoch_end and step != total_steps)

    def _steps_this_call(self, step, epoch_end, total_steps):
        """Returns how many steps the next tf.function call may run without crossing a boundary."""
        limit = self.steps_per_execution
        if epoch_end is not None:
            limit = min(limit, epoch_end - step)
        if total_steps is not None:
            limit = min(limit, total_steps - step)
        for every in (self.checkpoint_every_steps, self.eval_every_steps):
            if every:
                limit = min(limit, every - step % every)
        return limit

    def _train_steps(self, iterator, num_steps):
        """Runs `num_steps` optimizer steps; returns (host totals, seconds), or None at the data's end."""
        self._check_trainability()
        if self._train_fn is None:
            self._train_fn = self._make_train_fn()
        started = time.perf_counter()
        try:
            totals, first_bad_step = self._train_fn(iterator, tf.constant(num_steps, tf.int64))
        except tf.errors.OutOfRangeError:
            return None
        totals = {name: float(value) for name, value in totals.items()}
        elapsed = time.perf_counter() - started
        if int(first_bad_step) >= 0:
            self._raise_non_finite(int(first_bad_step), totals)
        return totals, elapsed

    def _stop_if_signalled(self):
        """At a step boundary: after a SIGTERM on any worker, checkpoint this step (signals held) and
        raise TrainingPreempted. After a Ctrl-C: on one worker, raise KeyboardInterrupt again if it
        was swallowed on its way (preemption.py); under multi-worker training, checkpoint this step
        on every worker's agreement, then raise KeyboardInterrupt on the interrupted worker and
        TrainingPreempted on the others."""
        interrupted_here = self._signals is not None and self._signals.interrupted
        if interrupted_here and not self._signals.defer_interrupt:
            raise KeyboardInterrupt
        sigterm, sigint = self._stop_agreed()
        if not (sigterm or sigint):
            return
        step = int(self.global_step.numpy())
        self._save()
        if interrupted_here and not sigterm:
            raise KeyboardInterrupt
        checkpoint = os.path.join(self.model_dir, f"ckpt-{step}") if self.model_dir else None
        cause = "SIGTERM" if sigterm else "a Ctrl-C on another worker"
        raise preemption.TrainingPreempted(checkpoint, step, cause)

    def _stop_agreed(self):
        """(any worker got SIGTERM, any worker deferred a Ctrl-C); every worker gets the same answer
        at the same step."""
        signals = self._signals
        flags = [float(signals is not None and signals.requested),
                 float(signals is not None and signals.defer_interrupt and signals.interrupted)]
        if distribute.num_workers(self.strategy) == 1:
            return tuple(flag > 0 for flag in flags)
        if self._agree_fn is None:
            strategy = self.strategy

            def agree(flag):
                per_replica = strategy.run(lambda: tf.identity(flag))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            self._agree_fn = tf.function(agree)
        sums = self._agree_fn(tf.constant(flags)).numpy()
        return bool(sums[0] > 0), bool(sums[1] > 0)

    def _raise_non_finite(self, bad_step, totals):
        loss = self.objective.train_logs(totals)["loss"]
        last_good = self._checkpoints.latest if self._checkpoints else None
        raise NonFiniteLossError(
            f"loss is {loss} at step {bad_step}; last good checkpoint: {last_good}")

    def _current_learning_rate(self):
        learning_rate = self._inner_optimizer.learning_rate
        return learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate

    # ---------------------------------------------------------------- checkpoints

    def _save(self):
        """Writes a step checkpoint unless one exists for the current step."""
        if self._checkpoints is not None:
            self._checkpoints.save(int(self.global_step.numpy()))

    def _save_best(self):
        if self._checkpoints is not None:
            with self.averaged_weights():
                self._checkpoints.save_best(int(self.global_step.numpy()), self._best.metric, self._best.best)

    # ---------------------------------------------------------------- weight averaging (ema_decay)

    def _weight_averages(self):
        """(variable, moving average) pairs of an optimizer built with `ema_decay`, else []."""
        inner = self._inner_optimizer
        if not getattr(inner, "use_ema", False):
            return []
        return [(variable, average) for variable, average
                in zip(inner._trainable_variables, inner._model_variables_moving_average) if average is not None]

    def _put_in_averages(self):
        """Assigns the moving averages to the model's variables; returns the trained values they
        replaced ([] without `ema_decay`)."""
        pairs = self._weight_averages()
        trained = [variable.numpy() for variable, _ in pairs]
        for variable, average in pairs:
            variable.assign(average)
        return trained

    def _put_back(self, trained):
        """Assigns trained values returned by `_put_in_averages` back to the model's variables."""
        for (variable, _), value in zip(self._weight_averages(), trained):
            variable.assign(value)

    @contextlib.contextmanager
    def averaged_weights(self):
        """Puts the optimizer's moving average of the weights into the model for the block, then the
        trained weights back (bit for bit). Without `ema_decay` (or after `fit`, when the model already
        holds the average) the model is left as it is.

        Example:
          >>> with trainer.averaged_weights():
          ...     metrics = trainer.evaluate(validation_data)
        """
        trained = self._put_in_averages() if self._trained_weights is None else []
        try:
            yield
        finally:
            self._put_back(trained)

    def _hold_averaged_weights(self):
        """After fit: the model holds the average; the trained weights are kept for a later fit."""
        if self._trained_weights is None:
            self._trained_weights = self._put_in_averages() or None

    def _put_back_trained_weights(self):
        if self._trained_weights is not None:
            self._put_back(self._trained_weights)
            self._trained_weights = None

    def restore_best(self):
        """Loads the best checkpoint's weights (`model_dir/best/`) into the model.

        Every worker reads its own copy (the chief's may still be being written). When this phase
        wrote no best checkpoint, the `previous_phase`'s best is loaded (it was better).

        Returns:
          str or None. The checkpoint loaded, or None when no best checkpoint was written.
        """
        path = self._checkpoints.restore_best(self.model) if self._checkpoints else None
        if path is None and self._previous_phase is not None:
            return self._previous_phase.restore_best()
        return path

    @property
    def evaluations(self):
        """Every evaluation of the run so far: list of {"step", "epoch", "val_*": value}."""
        return [dict(e) for e in self._best.evaluations]

    def weights_digest(self):
        """A SHA-256 over the model's weights: equal digests mean bit-identical weights."""
        digest = hashlib.sha256()
        for variable in self.model.weights:
            digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
        return digest.hexdigest()[:16]


@dataclasses.dataclass
class _FitRun:
    """What one `fit` call works with, passed through the loop instead of a dozen arguments."""

    train_data: tf.data.Dataset
    validation_data: tf.data.Dataset | None
    plan: steps_lib.StepPlan
    callbacks: keras.callbacks.CallbackList | None = None
    iterator: object = None
    last_evaluation: tuple | None = None  # (step, val_* logs) of this call's latest evaluation
    stopped_early: bool = False
    summaries: Summaries | None = None
    progress: ConsoleProgress | None = None
    history: dict = dataclasses.field(default_factory=dict)


def _last_logs(history):
    return {key: values[-1] for key, values in history.items()}
