"""Optimizers for training and fine-tuning: Adam/AdamW, warmup + decay schedule, exclusions."""
import math
import re

import keras
import tensorflow as tf

from tfmodels.choices import DECAYS, OPTIMIZERS as OPTIMIZER_NAMES
DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = (
    "LayerNorm", "layer_norm", "layernorm", "layer_normalization", "batch_normalization", "bias")


class OptimizerConfigError(ValueError):
    """An optimizer or schedule argument is out of range."""


@keras.saving.register_keras_serializable(package="tfmodels")
class WarmupDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `learning_rate`, then linear, cosine or no decay.

    Args:
      learning_rate: float. Peak learning rate reached at the end of warmup.
      total_steps: int. Steps at which the decay reaches `end_learning_rate`.
      warmup_steps: int. Steps of linear warmup. Defaults to 0.
      decay: str. "linear", "cosine" or "constant". Defaults to "linear".
      end_learning_rate: float. Learning rate at `total_steps` and after. Defaults to 0.0.
    """

    def __init__(self, learning_rate, total_steps, warmup_steps=0, decay="linear",
                 end_learning_rate=0.0):
        if decay not in DECAYS:
            raise OptimizerConfigError(f"decay {decay!r} unknown; choose one of {', '.join(DECAYS)}")
        if decay != "constant" and (total_steps is None or total_steps <= 0):
            raise OptimizerConfigError(
                f"total_steps must be a positive int for decay {decay!r}; got {total_steps!r}")
        if warmup_steps < 0:
            raise OptimizerConfigError(f"warmup_steps must be >= 0; got {warmup_steps}")
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps or 0)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.end_learning_rate = float(end_learning_rate)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.learning_rate, tf.float32)
        warmup = float(max(self.warmup_steps, 1))
        warmup_lr = peak * tf.minimum(step + 1.0, warmup) / warmup
        if self.decay == "constant":
            decayed = peak
        else:
            span = float(max(self.total_steps - self.warmup_steps, 1))
            progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            if self.decay == "linear":
                fraction = 1.0 - progress
            else:
                fraction = 0.5 * (1.0 + tf.cos(math.pi * progress))
            decayed = self.end_learning_rate + (peak - self.end_learning_rate) * fraction
        if self.warmup_steps == 0:
            return decayed
        return tf.where(step < self.warmup_steps, warmup_lr, decayed)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "decay": self.decay,
                "end_learning_rate": self.end_learning_rate}


@keras.saving.register_keras_serializable(package="tfmodels")
class AdamWithExclusions(keras.optimizers.Adam):
    """Adam with decoupled weight decay that skips matching variables and per-variable LR factors.

    Variable paths (e.g. "encoder/transformer_layer_0/self_attention_layer_norm/gamma") are
    searched with the regular expressions in `exclude_from_weight_decay_patterns` and
    `lr_multipliers` (first matching pattern wins).

    Args:
      exclude_from_weight_decay_patterns: list of str. Regexes of variable paths with no weight
        decay. Defaults to DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY.
      lr_multipliers: dict of str to float or None. Regex of variable paths -> learning-rate
        factor, e.g. {"classifier_head": 10.0}. Defaults to None.
      **kwargs: keras.optimizers.Adam arguments (learning_rate, weight_decay, beta_1, ...).
    """

    def __init__(self, exclude_from_weight_decay_patterns=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
                 lr_multipliers=None, **kwargs):
        super().__init__(**kwargs)
        self.exclude_from_weight_decay_patterns = list(exclude_from_weight_decay_patterns or [])
        self.lr_multipliers = dict(lr_multipliers or {})
        self._exclude_regex = (re.compile("|".join(self.exclude_from_weight_decay_patterns))
                               if self.exclude_from_weight_decay_patterns else None)

    def _use_weight_decay(self, variable):
        if self._exclude_regex is None:
            return True
        return self._exclude_regex.search(_variable_path(variable)) is None

    def lr_multiplier(self, variable):
        """Returns the learning-rate factor of `variable` (1.0 when no pattern matches).

        Args:
          variable: a Keras or TF variable.
        """
        path = _variable_path(variable)
        for pattern, factor in self.lr_multipliers.items():
            if re.search(pattern, path):
                return float(factor)
        return 1.0

    def update_step(self, gradient, variable, learning_rate):
        factor = self.lr_multiplier(variable)
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(exclude_from_weight_decay_patterns=self.exclude_from_weight_decay_patterns,
                      lr_multipliers=self.lr_multipliers)
        return config


def _variable_path(variable):
    """Returns the path of a Keras variable, or the name of a TF variable."""
    return getattr(variable, "path", None) or variable.name


def _resolve_warmup_steps(warmup_steps, warmup_fraction, total_steps):
    """Returns warmup steps from an explicit count or a fraction of total_steps."""
    if warmup_fraction is None:
        return int(warmup_steps or 0)
    if not 0.0 <= warmup_fraction <= 1.0:
        raise OptimizerConfigError(f"warmup_fraction must be in [0, 1]; got {warmup_fraction}")
    if warmup_steps:
        raise OptimizerConfigError(
            f"give warmup_steps or warmup_fraction, not both; got {warmup_steps} and {warmup_fraction}")
    if not total_steps:
        raise OptimizerConfigError(f"warmup_fraction needs total_steps; got total_steps={total_steps!r}")
    return int(round(warmup_fraction * total_steps))


def build_learning_rate(learning_rate, total_steps=None, warmup_steps=0, warmup_fraction=None,
                        decay="linear", end_learning_rate=0.0):
    """Returns a WarmupDecaySchedule, or the float itself for a constant rate without warmup.

    Args:
      learning_rate: float. Peak learning rate.
      total_steps: int or None. Total optimizer steps; needed for "linear"/"cosine" decay.
      warmup_steps: int. Linear warmup steps. Defaults to 0.
      warmup_fraction: float or None. Warmup as a fraction of total_steps. Defaults to None.
      decay: str. "linear", "cosine" or "constant". Defaults to "linear".
      end_learning_rate: float. Final learning rate of the decay. Defaults to 0.0.
    """
    if decay not in DECAYS:
        raise OptimizerConfigError(f"decay {decay!r} unknown; choose one of {', '.join(DECAYS)}")
    warmup = _resolve_warmup_steps(warmup_steps, warmup_fraction, total_steps)
    if decay == "constant" and warmup == 0:
        return float(learning_rate)
    return WarmupDecaySchedule(learning_rate, total_steps, warmup, decay, end_learning_rate)


def build_optimizer(name="adamw", learning_rate=1e-3, *, weight_decay=0.01, warmup_steps=0,
                    warmup_fraction=None, decay="linear", total_steps=None, end_learning_rate=0.0,
                    clipnorm=None, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                    exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
                    lr_multipliers=None, ema_decay=None):
    """Builds Adam or AdamW (decoupled weight decay) with a warmup + decay learning-rate schedule.

    Build it inside `strategy.scope()` (or let the Trainer build it there).

    Args:
      name: str. "adamw" or "adam" (no weight decay). Defaults to "adamw".
      learning_rate: float. Peak learning rate. Defaults to 1e-3.
      weight_decay: float. Decoupled weight decay of AdamW. Defaults to 0.01.
      warmup_steps: int. Linear warmup steps. Defaults to 0.
      warmup_fraction: float or None. Warmup as a fraction of total_steps. Defaults to None.
      decay: str. "linear", "cosine" or "constant". Defaults to "linear".
      total_steps: int or None. Total optimizer steps (needed unless decay="constant").
      end_learning_rate: float. Learning rate at total_steps. Defaults to 0.0.
      clipnorm: float or None. Clip gradients to this global norm. Defaults to None.
      beta_1: float. Adam beta_1. Defaults to 0.9.
      beta_2: float. Adam beta_2. Defaults to 0.999.
      epsilon: float. Adam epsilon. Defaults to 1e-6.
      exclude_from_weight_decay: list of str. Regexes of variable paths without weight decay.
        Defaults to LayerNorm, layer_norm, layer_normalization, batch_normalization and bias.
      lr_multipliers: dict of str to float or None. Variable-path regex -> learning-rate factor,
        e.g. {"head": 10.0} for a new classification head. Defaults to None.
      ema_decay: float or None. Also keep an exponential moving average of the weights, updated
        after every step as average = ema_decay * average + (1 - ema_decay) * weights (Polyak
        averaging; Keras' `use_ema`). The Trainer evaluates, keeps best/ and ends training with the
        average (`averaged_weights`). None keeps no average. Defaults to None.

    Example:
      >>> optimizer = build_optimizer("adamw", 3e-5, warmup_fraction=0.1, total_steps=1000)
    """
    if name not in OPTIMIZER_NAMES:
        raise OptimizerConfigError(
            f"optimizer {name!r} unknown; choose one of {', '.join(OPTIMIZER_NAMES)}")
    if learning_rate <= 0:
        raise OptimizerConfigError(f"learning_rate must be > 0; got {learning_rate}")
    if clipnorm is not None and clipnorm <= 0:
        raise OptimizerConfigError(f"clipnorm must be > 0 or None; got {clipnorm}")
    for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
        if not 0.0 <= value < 1.0:
            raise OptimizerConfigError(f"{key} must be in [0, 1); got {value}")
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise OptimizerConfigError(f"ema_decay must be in (0, 1) or None; got {ema_decay}")
    schedule = build_learning_rate(learning_rate, total_steps, warmup_steps, warmup_fraction,
                                   decay, end_learning_rate)
    use_decay = name == "adamw" and weight_decay
    return AdamWithExclusions(
        learning_rate=schedule, weight_decay=weight_decay if use_decay else None,
        beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, global_clipnorm=clipnorm,
        exclude_from_weight_decay_patterns=exclude_from_weight_decay if use_decay else (),
        lr_multipliers=lr_multipliers, use_ema=ema_decay is not None, ema_momentum=ema_decay or 0.99,
        name=name)
