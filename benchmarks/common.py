"""Shared pieces of the benchmarks: model sizes, timing, FLOP formulas, machine description."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQUENCE_LENGTH = 128
BATCH_SIZE = 32
NUM_CLASSES = 2


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """A BERT encoder size measured by the training benchmarks.

    Kept apart from `tfmodels.models.BertVariant` on purpose: the PyTorch worker imports this
    module, and importing `tfmodels.models` would load TensorFlow into it.

    Args:
        name: str. Row label, e.g. "mini".
        num_layers: int. L.
        hidden_dim: int. H.
        num_heads: int. A.
    """

    name: str
    num_layers: int
    hidden_dim: int
    num_heads: int

    @property
    def intermediate_dim(self) -> int:
        return 4 * self.hidden_dim

    @property
    def label(self) -> str:
        return f"{self.name} (L{self.num_layers}/H{self.hidden_dim}/A{self.num_heads})"

    def encoder_kwargs(self) -> dict:
        return {"num_layers": self.num_layers, "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim}


SIZES = {
    "mini": ModelSize("mini", 4, 256, 4),
    "wide": ModelSize("wide", 4, 768, 12),
}
PRECISIONS = ("float32", "mixed_bfloat16")


def layer_params(size: ModelSize) -> int:
    """Parameters of the transformer layers (Q/K/V/O, feed-forward, layer norms), no embeddings."""
    h, i = size.hidden_dim, size.intermediate_dim
    per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * (2 * h)
    return size.num_layers * per_layer


def train_flops_per_step(size: ModelSize, batch_size: int, sequence_length: int, task: str,
                         vocabulary_size: int = 0, max_predictions: int = 0) -> float:
    """Model FLOPs of one training step (forward + backward).

    6 * N * B * S for the dense layers (N = non-embedding transformer-layer parameters),
    + 12 * L * H * S^2 * B for attention scores and weighted sums (2 matmuls of 2*S^2*H
    forward, x3 with the backward pass),
    + for classification 6 * (H^2 + H*C) * B (pooler and head on [CLS]),
    + for masked LM 6 * (H^2 + H*V) * B * P (MLM transform and tied output projection at the
    P masked positions).

    Args:
        size: ModelSize.
        batch_size: int. B.
        sequence_length: int. S.
        task: str. "classification" or "mlm".
        vocabulary_size: int. V (mlm only).
        max_predictions: int. P (mlm only).
    """
    h, s, b = size.hidden_dim, sequence_length, batch_size
    flops = 6.0 * layer_params(size) * b * s + 12.0 * size.num_layers * h * s * s * b
    if task == "mlm":
        flops += 6.0 * (h * h + h * vocabulary_size) * b * max_predictions
    else:
        flops += 6.0 * (h * h + h * NUM_CLASSES) * b
    return flops


def top_layer_skipped_flops(size: ModelSize, batch_size: int, sequence_length: int,
                            read_positions: int) -> float:
    """Training FLOPs the tfmodels models do not execute: the top layer computed only at the
    `read_positions` positions that are read (1 for [CLS]; P masked positions for MLM).

    The top layer still projects keys and values at all S positions; its queries, attention,
    output projection, feed-forward block and layer norms run at the read positions only.
    Same counting as `train_flops_per_step`: 6 x parameters x tokens, 12 x H x S x queries
    for attention.
    """
    h, s, b = size.hidden_dim, sequence_length, batch_size
    per_layer = layer_params(size) / size.num_layers
    key_value = 2 * (h * h + h)
    full = 6.0 * per_layer * b * s + 12.0 * h * s * s * b
    executed = (6.0 * key_value * b * s + 6.0 * (per_layer - key_value) * b * read_positions
                + 12.0 * h * s * read_positions * b)
    return full - executed


def step_times(events, warmup: int):
    """Per-step seconds from (step index, perf_counter) events, skipping `warmup` events.

    Several steps in one call (steps_per_execution) are spread evenly over their interval.

    Args:
        events: list of (int, float). Step index at the end of a call and the time it ended.
        warmup: int. Calls ignored at the start (tracing, warm caches).
    """
    times = []
    kept = events[warmup:]
    for (step_a, time_a), (step_b, time_b) in zip(kept, kept[1:]):
        steps = max(step_b - step_a, 1)
        times.extend([(time_b - time_a) / steps] * steps)
    return times


def summarize_steps(times, batch_size: int, tokens_per_batch: float, flops_per_step: float = 0.0):
    """Throughput figures from per-step times (median-based, robust on a shared machine).

    Args:
        times: list of float. Seconds per step after warm-up.
        batch_size: int. Examples per step.
        tokens_per_batch: float. Tokens per step (real, non-padding tokens).
        flops_per_step: float. Model FLOPs per step; 0 leaves flops_per_second at 0.
    """
    if not times:
        raise ValueError("times is empty; run more steps than warm-up steps")
    median = statistics.median(times)
    mean = sum(times) / len(times)
    return {
        "timed_steps": len(times),
        "median_step_s": median,
        "mean_step_s": mean,
        "examples_per_s": batch_size / median,
        "tokens_per_s": tokens_per_batch / median,
        "flops_per_s": flops_per_step / median if flops_per_step else 0.0,
    }


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("values is empty")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def has_bf16_instructions(cpu_flags) -> bool:
    """Whether the CPU computes bfloat16 natively (else bf16 is converted in software).

    The flags of `tfmodels.training.precision` ("auto" picks bf16 on them), repeated here
    because this module must not load TensorFlow (the PyTorch worker imports it); a test
    keeps the two equal.
    """
    return any(flag in cpu_flags for flag in BF16_CPU_FLAGS)


def auto_precision(cpu_flags) -> str:
    """The precision `precision: auto` trains in on a CPU with these flags."""
    return "mixed_bfloat16" if has_bf16_instructions(cpu_flags) else "float32"


def cpu_flags_of_interest() -> list[str]:
    """The vector / bfloat16 flags of the CPU that matter for these benchmarks."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def cpu_times() -> dict:
    """A snapshot for `cpu_use_between`: the machine's busy and stolen CPU seconds (from
    /proc/stat; None where unavailable), this process's own CPU seconds (with its waited-for
    children) and the wall clock."""
    own = os.times()
    snapshot = {"wall_s": time.monotonic(),
                "own_cpu_s": own.user + own.system + own.children_user + own.children_system,
                "busy_s": None, "steal_s": None}
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return snapshot
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    snapshot.update(busy_s=(user + nice + system + irq + softirq) / ticks, steal_s=steal / ticks)
    return snapshot


def cpu_use_between(start: dict, end: dict, cores: int) -> dict:
    """Shares of the machine's CPU capacity between two `cpu_times` snapshots.

    Returns {"own", "other", "steal"}: this process tree, every other process on the machine
    (busy time not ours), and time the hypervisor gave to other guests; each a fraction of
    wall time x cores, None where /proc/stat was unavailable.
    """
    capacity = max(end["wall_s"] - start["wall_s"], 1e-9) * max(cores, 1)
    own = (end["own_cpu_s"] - start["own_cpu_s"]) / capacity
    if start["busy_s"] is None or end["busy_s"] is None:
        return {"own": own, "other": None, "steal": None}
    busy = (end["busy_s"] - start["busy_s"]) / capacity
    return {"own": own, "other": max(busy - own, 0.0),
            "steal": (end["steal_s"] - start["steal_s"]) / capacity}


def versions() -> dict:
    """Versions of Python and the libraries compared (None when not installed)."""
    import importlib.metadata as metadata

    found = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "keras-hub", "tensorflow-text", "numpy", "torch",
                    "transformers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine_info() -> dict:
    """CPU model, core count, flags, load average now and the environment knobs that matter."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags_of_interest(),
        "load_average": load_average(),
        "platform": platform.platform(),
        "env": {key: os.environ.get(key) for key in (
            "TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS")},
    }


def ratio(numerator, denominator):
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def child_env(**extra) -> dict:
    """This process's environment with the repository first on PYTHONPATH, plus `extra`, for the
    `python -m benchmarks.<module>` child processes (run with cwd=REPO_ROOT)."""
    return dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **extra)


def last_line(text: str, default: str = "no output") -> str:
    """The last non-empty line of a child's output (its error message), or `default`."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else default


def _proc_status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise OSError(f"{field} not found in /proc/self/status")


def rss_mib() -> float:
    """This process's resident set size now (VmRSS), MiB."""
    return _proc_status_mib("VmRSS")


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM, the high-water mark of its own memory), MiB.

    Not `ru_maxrss`: on Linux a process started by (v)fork + exec keeps in `ru_maxrss` its
    parent's peak at the fork, so a child of a large benchmark runner would report the runner's
    peak instead of its own.
    """
    return _proc_status_mib("VmHWM")


RESULT_PREFIX = "RESULT "


def print_result(result: dict) -> None:
    """Prints a child process's result as the line `run_child` reads."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(module: str, arguments, timeout: int) -> dict:
    """Runs `python -m <module> <arguments>` from the repository in a fresh process.

    Returns:
        dict. The child's `print_result` line, or {"error": its exit code and last line}.
    """
    completed = subprocess.run([sys.executable, "-m", module, *arguments], capture_output=True,
                               text=True, cwd=REPO_ROOT, env=child_env(), timeout=timeout)
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return {"error": f"child exited with code {completed.returncode}: "
                     f"{last_line(completed.stderr)}"}


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Sets the Keras global dtype policy to `precision` inside the block, then restores it.

    Keras is imported here, not at module level: the PyTorch worker imports this module.
    """
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
