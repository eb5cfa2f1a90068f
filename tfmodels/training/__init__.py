"""Training: strategies, precision, optimizers, metrics and the Trainer loop."""
from tfmodels.training.determinism import apply_op_determinism
from tfmodels.training.dropout import keep_mask, use_fast_dropout
from tfmodels.training.distribute import (
    STRATEGY_NAMES, StrategyError, get_strategy, is_chief, num_workers, split_cpu_devices, worker_id,
    writable_dir)
from tfmodels.training.metrics import (
    ClassificationMetrics, MaskedLMMetrics, SummedMetrics, area_under_roc_curve, confusion_matrix_batch,
    masked_lm_batch_sums, metrics_from_confusion_matrix, replaced_token_batch_sums,
    replaced_token_logit_histograms)
from tfmodels.training.optimization import (
    DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY, AdamWithExclusions, OptimizerConfigError, WarmupDecaySchedule,
    build_learning_rate, build_optimizer)
from tfmodels.training.precision import PRECISIONS, PrecisionError, apply_precision, resolve_precision
from tfmodels.training.steps import StepPlan, StepPlanError, batches, optimizer_steps_per_epoch, plan_steps
from tfmodels.training.checkpointing import CheckpointRestoreError, latest_checkpoint, restore_model_weights
from tfmodels.training.objectives import (
    OBJECTIVES, Classification, Electra, MaskedLM, Objective, ObjectiveError, classification_loss_sum,
    get_objective)
from tfmodels.training.preemption import PREEMPTED_EXIT_STATUS, TrainingPreempted
from tfmodels.training.trainer import NonFiniteLossError, Trainer, TrainerConfigError, unpack_batch

__all__ = [
    "apply_op_determinism",
    "keep_mask", "use_fast_dropout",
    "STRATEGY_NAMES", "StrategyError", "get_strategy", "is_chief", "num_workers", "split_cpu_devices", "worker_id",
    "writable_dir",
    "ClassificationMetrics", "MaskedLMMetrics", "SummedMetrics", "confusion_matrix_batch", "masked_lm_batch_sums",
    "area_under_roc_curve", "metrics_from_confusion_matrix", "replaced_token_batch_sums", "replaced_token_logit_histograms",
    "DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY", "AdamWithExclusions", "OptimizerConfigError",
    "WarmupDecaySchedule", "build_learning_rate", "build_optimizer",
    "PRECISIONS", "PrecisionError", "apply_precision", "resolve_precision",
    "StepPlan", "StepPlanError", "batches", "optimizer_steps_per_epoch", "plan_steps",
    "OBJECTIVES", "Classification", "Electra", "MaskedLM", "Objective", "ObjectiveError", "get_objective",
    "PREEMPTED_EXIT_STATUS", "TrainingPreempted",
    "CheckpointRestoreError", "NonFiniteLossError", "Trainer", "TrainerConfigError",
    "classification_loss_sum", "latest_checkpoint", "restore_model_weights", "unpack_batch",
]
