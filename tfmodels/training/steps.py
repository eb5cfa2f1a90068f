"""One rule for every step and epoch quantity: steps are optimizer steps, counted from step 0.

A run has `total_steps` optimizer steps; an epoch is `steps_per_epoch` of them. With gradient
accumulation an optimizer step consumes `grad_accum_steps` batches, so one pass over a dataset of
B batches is `B // grad_accum_steps` optimizer steps (at least one). The learning-rate schedule,
the Trainer's loop, checkpoints and logs all count in these steps. `steps` and `epochs` are totals
from the start of the run, so a resumed run, or a second `fit` call in the same process, stops at
the same step as an uninterrupted one.

Example:
    >>> plan = plan_steps(epochs=3, steps_per_epoch=optimizer_steps_per_epoch(batches(1000, 32), 2))
    >>> plan.steps_per_epoch, plan.total_steps
    (16, 48)
"""
from __future__ import annotations

import dataclasses
import math


class StepPlanError(ValueError):
    """Epochs, steps or steps per epoch are missing or invalid."""


def batches(num_examples: int, batch_size: int) -> int:
    """Batches in one pass over `num_examples` (the last one may be partial)."""
    return max(1, math.ceil(num_examples / batch_size))


def optimizer_steps_per_epoch(num_batches: int, grad_accum_steps: int = 1) -> int:
    """Optimizer steps in one pass over `num_batches` batches with gradient accumulation.

    Args:
        num_batches: int. Batches in one pass over the training data.
        grad_accum_steps: int. Batches summed into one optimizer step. Defaults to 1.
    """
    if num_batches < grad_accum_steps:
        raise StepPlanError(f"the training data has {num_batches} batches, fewer than grad_accum_steps="
                            f"{grad_accum_steps}; allowed: grad_accum_steps <= batches per epoch")
    return num_batches // grad_accum_steps


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """How long a run is, in optimizer steps.

    Attributes:
        epochs: int. Epochs of the whole run.
        total_steps: int | None. Optimizer steps of the whole run; None when epochs end with the data.
        steps_per_epoch: int | None. Optimizer steps per epoch; None when an epoch ends with the data.
    """

    epochs: int
    total_steps: int | None
    steps_per_epoch: int | None

    def epoch_of(self, step: int) -> int:
        """The epoch (from 0) that optimizer step `step` belongs to."""
        return step // self.steps_per_epoch

    def epoch_end(self, step: int) -> int:
        """The step at which the epoch holding `step` ends (capped at total_steps)."""
        end = (self.epoch_of(step) + 1) * self.steps_per_epoch
        return end if self.total_steps is None else min(end, self.total_steps)


def plan_steps(epochs: int | None = None, steps: int | None = None,
               steps_per_epoch: int | None = None) -> StepPlan:
    """The run's epochs, total steps and steps per epoch from whichever of them are given.

    Args:
        epochs: int | None. Epochs of the whole run. Defaults to 1, or to enough epochs for `steps`.
        steps: int | None. Optimizer steps of the whole run; with `epochs` too, the run ends at the
            first of the two. Defaults to None.
        steps_per_epoch: int | None. Optimizer steps per epoch; when None and `steps` is given, the
            steps are spread over the epochs; when both are None, epochs end with the data.
    """
    for name, value in (("epochs", epochs), ("steps", steps), ("steps_per_epoch", steps_per_epoch)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise StepPlanError(f"{name} must be an int >= 1 or None; got {value!r}")
    if steps_per_epoch is None and steps is not None:
        steps_per_epoch = math.ceil(steps / (epochs or 1))
    if epochs is None:
        epochs = math.ceil(steps / steps_per_epoch) if steps and steps_per_epoch else 1
    candidates = [n for n in (steps, epochs * steps_per_epoch if steps_per_epoch else None) if n]
    return StepPlan(epochs, min(candidates) if candidates else None, steps_per_epoch)
