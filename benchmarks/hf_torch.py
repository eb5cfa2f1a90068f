"""Hugging Face transformers `BertForSequenceClassification` training throughput in PyTorch (CPU).

An optional extra (requirements-bench.txt). It runs in its own process so that PyTorch's and
TensorFlow's thread pools never share the run: `HFWorker` starts `python -m benchmarks.hf_torch
--serve` once and sends it one JSON request per line; the worker blocks on its input (idle) while
TensorFlow measures. `TorchSide` keeps one model in the worker for interleaved comparisons.
The same config, optimizer settings (AdamW, lr 1e-4, weight decay 0.01, clip 1.0) and fixed
batch as the TensorFlow side; bfloat16 via `torch.autocast("cpu", dtype=torch.bfloat16)`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import common

MISSING_MESSAGE = ("skipped: torch and transformers are not importable; install the optional "
                   "extra with `pip install -r requirements-bench.txt`")


def available() -> bool:
    """Whether torch and transformers are installed (checked without importing them)."""
    import importlib.util
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))


class TorchTraining:
    """BertForSequenceClassification with AdamW on one fixed batch, trained a few steps per call.

    Args:
        config: dict with size (dict of ModelSize fields), precision ("float32" or
            "mixed_bfloat16"), vocabulary_size, batch_size, sequence_length.
    """

    def __init__(self, config: dict):
        import torch
        import transformers

        self.size = common.ModelSize(**config["size"])
        torch.manual_seed(0)
        torch.set_num_threads(os.cpu_count() or 1)
        self.model = transformers.BertForSequenceClassification(transformers.BertConfig(
            vocab_size=config["vocabulary_size"], hidden_size=self.size.hidden_dim,
            num_hidden_layers=self.size.num_layers, num_attention_heads=self.size.num_heads,
            intermediate_size=self.size.intermediate_dim, max_position_embeddings=512,
            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
            num_labels=common.NUM_CLASSES))
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.01,
                                           eps=1e-6)
        generator = torch.Generator().manual_seed(0)
        batch_size, sequence_length = config["batch_size"], config["sequence_length"]
        self.input_ids = torch.randint(5, config["vocabulary_size"], (batch_size, sequence_length),
                                       generator=generator)
        self.labels = torch.randint(0, common.NUM_CLASSES, (batch_size,), generator=generator)
        self.attention_mask = torch.ones_like(self.input_ids)
        self.token_type_ids = torch.zeros_like(self.input_ids)
        self.use_bf16 = config["precision"] == "mixed_bfloat16"
        self.details = {"torch_threads": torch.get_num_threads(),
                        "attn_implementation": getattr(self.model.config,
                                                       "_attn_implementation", None)}

    def step(self):
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.use_bf16):
            loss = self.model(input_ids=self.input_ids, attention_mask=self.attention_mask,
                              token_type_ids=self.token_type_ids, labels=self.labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def run(self, steps: int) -> list:
        """Trains `steps` steps; returns per-step seconds between consecutive step ends."""
        events = []
        for index in range(steps):
            self.step()
            events.append((index, time.perf_counter()))
        return common.step_times(events, 0)


def measure(config: dict) -> dict:
    """Trains BertForSequenceClassification on one fixed batch on its own; returns a result dict.

    Args:
        config: TorchTraining's config plus warmup and timed_steps.
    """
    training = TorchTraining(config)
    training.run(config["warmup"])
    times = training.run(config["timed_steps"] + 1)
    flops = common.train_flops_per_step(training.size, config["batch_size"],
                                        config["sequence_length"], "classification")
    result = {"framework": "hf_torch", "task": "classification", "size": training.size.name,
              "size_label": training.size.label, "precision": config["precision"],
              "batch_size": config["batch_size"], "sequence_length": config["sequence_length"],
              "warmup": config["warmup"], "steps_per_execution": 1, "jit_compile": False,
              "flops_per_step": flops, **training.details}
    result.update(common.summarize_steps(times, config["batch_size"],
                                         config["batch_size"] * config["sequence_length"], flops))
    return result


def worker_config(size, precision, vocabulary_size, batch_size, sequence_length) -> dict:
    """The JSON config the worker builds a TorchTraining from."""
    return {"size": {"name": size.name, "num_layers": size.num_layers,
                     "hidden_dim": size.hidden_dim, "num_heads": size.num_heads},
            "precision": precision, "vocabulary_size": vocabulary_size,
            "batch_size": batch_size, "sequence_length": sequence_length}


class WorkerError(RuntimeError):
    """The PyTorch worker reported an error or exited."""


class HFWorker:
    """A long-lived `python -m benchmarks.hf_torch --serve` process measuring on request.

    Requests are JSON lines: {"op": "measure", "config": ...} (a whole measurement),
    {"op": "build", "config": ...} (keep one TorchTraining) and {"op": "run", "steps": n}
    (train it n steps, return the step times).
    """

    def __init__(self, python=sys.executable):
        self.process = subprocess.Popen(
            [python, "-m", "benchmarks.hf_torch", "--serve"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=common.child_env(), cwd=common.REPO_ROOT)

    def request(self, message: dict) -> dict:
        """Sends one request; returns the answer (or {"error": message})."""
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            return {"error": f"hf_torch worker exited with code {self.process.poll()}"}
        return json.loads(line)

    def measure(self, config: dict) -> dict:
        """One whole measurement of `config` (see `measure`)."""
        return self.request({"op": "measure", "config": config})

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


class TorchSide:
    """The worker's TorchTraining as a side of `interleave.run_rounds`.

    Raises WorkerError when the worker cannot build or run it.
    """

    framework = "hf_torch"

    def __init__(self, worker: HFWorker, config: dict):
        self.worker = worker
        answer = worker.request({"op": "build", "config": config})
        if "error" in answer:
            raise WorkerError(answer["error"])
        self.details = answer.get("details", {})

    def run(self, steps: int) -> list:
        answer = self.worker.request({"op": "run", "steps": steps})
        if "error" in answer:
            raise WorkerError(answer["error"])
        return answer["times"]


def _answer(message: dict, state: dict) -> dict:
    op = message.get("op")
    if op == "measure":
        return measure(message["config"])
    if op == "build":
        state["training"] = TorchTraining(message["config"])
        return {"ok": True, "details": state["training"].details}
    if op == "run":
        if "training" not in state:
            return {"error": "run before build: send {\"op\": \"build\"} first"}
        return {"times": state["training"].run(int(message["steps"]))}
    return {"error": f"op {op!r} unknown; choose one of measure, build, run"}


def serve(stdin=sys.stdin, stdout=sys.stdout):
    """Reads one JSON request per line, writes one JSON answer per line."""
    state = {}
    for line in stdin:
        if not line.strip():
            continue
        try:
            result = _answer(json.loads(line), state)
        except Exception as error:  # reported to the parent, which records it in the table
            result = {"error": f"{type(error).__name__}: {error}"}
        stdout.write(json.dumps(result) + "\n")
        stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="answer configurations on stdin")
    args = parser.parse_args(argv)
    if args.serve:
        serve()


if __name__ == "__main__":
    main()
