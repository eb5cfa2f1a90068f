"""Dense matmul peak: tf.matmul of two 2048 x 2048 matrices in float32 and bfloat16."""
from __future__ import annotations

import statistics
import time

import tensorflow as tf

DTYPES = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16}


def measure_matmul_peak(precision="float32", n=2048, repeats=20, warmup=3):
    """Returns the best and median GFLOP/s of `tf.matmul` n x n x n (2 n^3 FLOPs per call).

    Args:
        precision: str. "float32" or "mixed_bfloat16" (matmul in bfloat16).
        n: int. Matrix size. Defaults to 2048.
        repeats: int. Timed calls. Defaults to 20.
        warmup: int. Untimed calls first. Defaults to 3.
    """
    if precision not in DTYPES:
        raise ValueError(f"precision {precision!r} unknown; choose one of {', '.join(DTYPES)}")
    dtype = DTYPES[precision]
    a = tf.cast(tf.random.stateless_normal([n, n], seed=[1, 2]), dtype)
    b = tf.cast(tf.random.stateless_normal([n, n], seed=[3, 4]), dtype)
    seconds = []
    for index in range(warmup + repeats):
        started = time.perf_counter()
        product = tf.matmul(a, b)
        product[0, 0].numpy()  # waits for the result
        if index >= warmup:
            seconds.append(time.perf_counter() - started)
    flops = 2.0 * n ** 3
    return {"precision": precision, "n": n, "repeats": repeats,
            "best_gflops": flops / min(seconds) / 1e9,
            "median_gflops": flops / statistics.median(seconds) / 1e9}
