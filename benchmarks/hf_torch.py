"""Hugging Face transformers `BertForSequenceClassification` training throughput in PyTorch (CPU).

An optional extra (requirements-bench.txt). It runs in its own process so that PyTorch's and
TensorFlow's thread pools never share the run: `HFWorker` starts `python -m benchmarks.hf_torch
--serve` once, sends one configuration per line (JSON) and reads one result per line; the worker
blocks on its input (idle) while TensorFlow measures. The same config, optimizer settings
(AdamW, lr 1e-4, weight decay 0.01, clip 1.0) and fixed batch as the TensorFlow side;
bfloat16 via `torch.autocast("cpu", dtype=torch.bfloat16)`.
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


def measure(config: dict) -> dict:
    """Trains BertForSequenceClassification on one fixed batch; returns a result dict.

    Args:
        config: dict with size (dict of ModelSize fields), precision ("float32" or
            "mixed_bfloat16"), vocabulary_size, batch_size, sequence_length, warmup, timed_steps.
    """
    import torch
    import transformers

    size = common.ModelSize(**config["size"])
    batch_size, sequence_length = config["batch_size"], config["sequence_length"]
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=config["vocabulary_size"], hidden_size=size.hidden_dim,
        num_hidden_layers=size.num_layers, num_attention_heads=size.num_heads,
        intermediate_size=size.intermediate_dim, max_position_embeddings=512,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        num_labels=common.NUM_CLASSES))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, eps=1e-6)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, config["vocabulary_size"], (batch_size, sequence_length),
                              generator=generator)
    attention_mask = torch.ones_like(input_ids)
    token_type_ids = torch.zeros_like(input_ids)
    labels = torch.randint(0, common.NUM_CLASSES, (batch_size,), generator=generator)
    use_bf16 = config["precision"] == "mixed_bfloat16"

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = model(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    events = []
    for index in range(config["warmup"] + 1 + config["timed_steps"]):
        step()
        events.append((index, time.perf_counter()))
    times = common.step_times(events, config["warmup"])
    flops = common.train_flops_per_step(size, batch_size, sequence_length, "classification")
    result = {"framework": "hf_torch", "task": "classification", "size": size.name,
              "size_label": size.label, "precision": config["precision"],
              "batch_size": batch_size, "sequence_length": sequence_length,
              "warmup": config["warmup"], "steps_per_execution": 1, "jit_compile": False,
              "flops_per_step": flops, "torch_threads": torch.get_num_threads(),
              "attn_implementation": getattr(model.config, "_attn_implementation", None)}
    result.update(common.summarize_steps(times, batch_size, batch_size * sequence_length, flops))
    return result


class HFWorker:
    """A long-lived `python -m benchmarks.hf_torch --serve` process measuring on request."""

    def __init__(self, python=sys.executable):
        self.process = subprocess.Popen(
            [python, "-m", "benchmarks.hf_torch", "--serve"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=common.child_env(), cwd=common.REPO_ROOT)

    def measure(self, config: dict) -> dict:
        """Sends one configuration; returns its result (or {"error": message})."""
        self.process.stdin.write(json.dumps(config) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            return {"error": f"hf_torch worker exited with code {self.process.poll()}"}
        return json.loads(line)

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def serve(stdin=sys.stdin, stdout=sys.stdout):
    """Reads one JSON configuration per line, writes one JSON result per line."""
    for line in stdin:
        if not line.strip():
            continue
        try:
            result = measure(json.loads(line))
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
