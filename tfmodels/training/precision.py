"""Precision policies: float32, mixed_float16, mixed_bfloat16 and hardware-based "auto"."""
import logging

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

from tfmodels.choices import PRECISIONS
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

# Model kinds that "auto" trains in float32 whatever the hardware: an LSTM's gates and cell state in
# bfloat16 (8-bit mantissa) lose too much over a sequence (the embedded sentiment BiLSTM measured
# 69.1% test accuracy in mixed_bfloat16 against 77.4% in float32). An explicit precision still applies.
FLOAT32_MODEL_KINDS = ("lstm",)


class PrecisionError(ValueError):
    """A precision name is not one of PRECISIONS."""


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """Returns the set of CPU feature flags listed in /proc/cpuinfo (empty when unreadable).

    Args:
      cpuinfo_path: str. File to read. Defaults to "/proc/cpuinfo".
    """
    try:
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_compute_capabilities():
    """Returns the (major, minor) compute capability of each visible GPU."""
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return capabilities


def _auto_precision(gpu_capabilities, flags):
    """Returns the policy name "auto" resolves to, and why."""
    if gpu_capabilities:
        lowest = min(gpu_capabilities)
        if lowest >= (8, 0):
            return "mixed_bfloat16", f"GPU compute capability {lowest[0]}.{lowest[1]} >= 8.0"
        return "mixed_float16", f"GPU compute capability {lowest[0]}.{lowest[1]} < 8.0"
    bf16_flags = sorted(set(_BF16_CPU_FLAGS) & flags)
    if bf16_flags:
        return "mixed_bfloat16", f"CPU supports {', '.join(bf16_flags)}"
    return "float32", "no GPU and no CPU bfloat16 support (avx512_bf16/amx_bf16)"


def resolve_precision(name="auto", gpu_capabilities=None, flags=None, model_kind=None):
    """Returns the concrete precision policy name for `name`, resolving "auto" from the hardware.

    "auto" picks float32 for the model kinds in FLOAT32_MODEL_KINDS (recurrent models), else
    mixed_bfloat16 on GPUs with compute capability >= 8.0 and on CPUs with AVX512-BF16 or AMX,
    mixed_float16 on older GPUs, otherwise float32.

    Args:
      name: str. One of "auto", "float32", "mixed_float16", "mixed_bfloat16". Defaults to "auto".
      gpu_capabilities: list of (int, int) or None. GPU compute capabilities; detected when None.
      flags: set of str or None. CPU flags; read from /proc/cpuinfo when None.
      model_kind: str or None. The model trained (`model.kind`: bert, lstm, mlp). Defaults to None.
    """
    if name not in PRECISIONS:
        raise PrecisionError(f"precision {name!r} unknown; choose one of {', '.join(PRECISIONS)}")
    if name != "auto":
        return name
    if model_kind in FLOAT32_MODEL_KINDS:
        logger.info("precision auto -> float32 (model kind %s trains in float32)", model_kind)
        return "float32"
    if gpu_capabilities is None:
        gpu_capabilities = gpu_compute_capabilities()
    if flags is None:
        flags = cpu_flags()
    resolved, reason = _auto_precision(gpu_capabilities, flags)
    logger.info("precision auto -> %s (%s)", resolved, reason)
    return resolved


def apply_precision(name="auto", model_kind=None):
    """Sets the global Keras dtype policy and returns the resolved policy name.

    Call it before building the model. With mixed_float16 the Trainer wraps the optimizer in a
    keras.optimizers.LossScaleOptimizer (dynamic loss scaling).

    Args:
      name: str. One of "auto", "float32", "mixed_float16", "mixed_bfloat16". Defaults to "auto".
      model_kind: str or None. The model to be built; see `resolve_precision`. Defaults to None.
    """
    resolved = resolve_precision(name, model_kind=model_kind)
    keras.mixed_precision.set_global_policy(resolved)
    logger.info("Keras global dtype policy: %s", resolved)
    return resolved
