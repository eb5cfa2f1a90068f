"""Distribution strategies chosen by name, including multi-worker from TF_CONFIG."""
import atexit
import functools
import json
import logging
import os
import shutil
import tempfile

import tensorflow as tf

logger = logging.getLogger(__name__)

from tfmodels.choices import STRATEGIES as STRATEGY_NAMES


class StrategyError(ValueError):
    """A strategy name, device list or TF_CONFIG is invalid."""


def _read_tf_config():
    """Returns the parsed TF_CONFIG environment variable, or None when unset."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({error}): {raw[:200]!r}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise StrategyError(
            f"TF_CONFIG must be a JSON object with keys 'cluster' and 'task'; got {raw[:200]!r}")
    task = config["task"]
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise StrategyError(f"TF_CONFIG 'task' must hold 'type' and 'index'; got {task!r}")
    if task["type"] not in config["cluster"]:
        raise StrategyError(
            f"TF_CONFIG task type {task['type']!r} is not in cluster jobs {sorted(config['cluster'])}")
    return config


def _cluster_size(tf_config):
    """Returns the number of chief and worker tasks in a parsed TF_CONFIG."""
    cluster = tf_config["cluster"]
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


@functools.lru_cache(maxsize=None)
def _multi_worker_strategy():
    """Returns this process's MultiWorkerMirroredStrategy, built once after checking TF_CONFIG."""
    tf_config = _read_tf_config()
    if tf_config is None:
        raise StrategyError(
            "strategy 'multi_worker' needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    return tf.distribute.MultiWorkerMirroredStrategy()


def _default_mirrored_devices():
    """All GPUs; without GPUs, every logical CPU (several when `split_cpu_devices` made them)."""
    gpus = tf.config.list_logical_devices("GPU")
    return tuple(d.name for d in (gpus or tf.config.list_logical_devices("CPU")))


def split_cpu_devices(count):
    """Splits the host CPU into `count` logical devices, a stand-in for `count` GPUs.

    `strategy: mirrored` then replicates over them, so a multi-GPU configuration can be tried on
    a laptop. Call before TensorFlow creates its devices (before the first op).

    Args:
      count: int. Logical CPU devices, >= 1.
    """
    if not isinstance(count, int) or count < 1:
        raise StrategyError(f"cpu_devices must be an int >= 1; got {count!r}")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise StrategyError("cpu_devices must be set before TensorFlow initializes its devices") from None


@functools.lru_cache(maxsize=None)
def _mirrored_strategy(devices):
    """Returns one MirroredStrategy per device tuple.

    Two MirroredStrategy objects over the same devices in one process reuse collective keys and
    fail with "Shape mismatch in the collective instance", so the strategy is shared.
    """
    return tf.distribute.MirroredStrategy(list(devices))


def _local_device_key(devices):
    """Devices as a tuple of '/device:<TYPE>:<index>', so '/cpu:0' and its full name share a strategy."""
    specs = [tf.DeviceSpec.from_string(d) for d in devices]
    return tuple(f"/device:{s.device_type.upper()}:{s.device_index or 0}" for s in specs)


@functools.lru_cache(maxsize=None)
def _one_device_strategy(device):
    """Returns one OneDeviceStrategy per device.

    Variables built under one OneDeviceStrategy object cannot be used under another (the
    optimizer's slots fail with "colocate_vars_with must only be passed a variable created in
    this tf.distribute.Strategy.scope()"), so every stage of a process shares one.
    """
    return tf.distribute.OneDeviceStrategy(device)


@functools.lru_cache(maxsize=None)
def _tpu_strategy():
    """Connects to the TPU cluster (TPU_NAME or local) and builds a TPUStrategy."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _auto_strategy(devices):
    """Picks multi-worker with a multi-task TF_CONFIG, mirrored on several GPUs, else one device."""
    tf_config = _read_tf_config()
    if tf_config is not None and _cluster_size(tf_config) > 1:
        return _multi_worker_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if devices and len(devices) > 1 or len(gpus) > 1:
        return _mirrored_strategy(_local_device_key(devices or _default_mirrored_devices()))
    if gpus:
        return _one_device_strategy(gpus[0].name)
    return tf.distribute.get_strategy()


def get_strategy(name="auto", devices=None):
    """Returns a tf.distribute strategy chosen by name, created once per process.

    Build models and optimizers inside `strategy.scope()` of the returned strategy. Asking again
    for the same name and devices returns the same object, so every stage of a process (e.g. the
    pipeline's pretraining and fine-tuning) shares it: variables are bound to the strategy object
    they were created under, and MultiWorkerMirroredStrategy can be created only once per process.

    Args:
      name: str. One of "auto" (multi-worker when TF_CONFIG lists several tasks, mirrored over
        several GPUs, one GPU, else the default strategy), "default", "one_device", "mirrored",
        "multi_worker" (reads TF_CONFIG), "tpu" (TPUClusterResolver, TPU_NAME). Defaults to "auto".
      devices: list of str or None. Devices for "mirrored" (all GPUs, else all logical CPUs, when None) or the
        single device for "one_device" (first GPU, else CPU, when None). Defaults to None.

    Example:
      >>> strategy = get_strategy("default")
      >>> with strategy.scope():
      ...     model = build_model()
    """
    if name not in STRATEGY_NAMES:
        raise StrategyError(f"strategy {name!r} unknown; choose one of {', '.join(STRATEGY_NAMES)}")
    if name == "auto":
        strategy = _auto_strategy(devices)
    elif name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "one_device":
        if devices and len(devices) != 1:
            raise StrategyError(f"strategy 'one_device' takes one device; got devices={devices!r}")
        gpus = tf.config.list_logical_devices("GPU")
        device = devices[0] if devices else (gpus[0].name if gpus else "/cpu:0")
        strategy = _one_device_strategy(device)
    elif name == "mirrored":
        strategy = _mirrored_strategy(_local_device_key(devices or _default_mirrored_devices()))
    elif name == "multi_worker":
        strategy = _multi_worker_strategy()
    else:
        strategy = _tpu_strategy()
    logger.info("Using %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def is_chief(strategy=None):
    """Returns True when this process should write checkpoints, summaries and exports.

    Args:
      strategy: tf.distribute.Strategy or None. The strategy in use; None means the current one.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def num_workers(strategy=None):
    """Returns the number of worker processes of a multi-worker job (1 otherwise).

    Args:
      strategy: tf.distribute.Strategy or None. The strategy in use; None means the current one.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    return max(1, _cluster_size({"cluster": strategy.cluster_resolver.cluster_spec().as_dict()}))


def worker_id(strategy=None):
    """Returns "<task_type>_<task_id>" of this process, or "chief" outside multi-worker training.

    Args:
      strategy: tf.distribute.Strategy or None. The strategy in use; None means the current one.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return "chief"
    return f"{resolver.task_type}_{resolver.task_id}"


_PRIVATE_ROOT = []


def writable_dir(path, strategy=None):
    """Where this process writes what belongs in `path`: `path` itself on the chief; on the other
    workers of a multi-worker job a private mirror of it, removed when the process exits.

    Only the chief writes a shared run directory (NFS, GCS). The same `path` maps to the same
    mirror within a process, so a later stage finds what an earlier one wrote.

    Args:
      path: str. A directory the run writes.
      strategy: tf.distribute.Strategy or None. The strategy in use; None means the current one.
    """
    if is_chief(strategy):
        return path
    if not _PRIVATE_ROOT:
        root = tempfile.mkdtemp(prefix=f"tfmodels_{worker_id(strategy)}_")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _PRIVATE_ROOT.append(root)
    return os.path.join(_PRIVATE_ROOT[0], os.path.abspath(path).lstrip(os.sep))
