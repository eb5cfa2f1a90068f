"""Fixtures for the fault-injection suite: running binaries, tiny configs and data files."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.subprocess_jobs import QUIET_ENV

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "binary_server.py")
# The LSTM text model used by the bad-input matrix: small enough to train in a few seconds.
TINY_TEXT_CONFIG = """\
name: reliability_text
precision: float32
seed: 7
data:
  train: {train}
  vocab_size: 120
  sequence_length: 16
  batch_size: 8
  eval_batch_size: 16
  cache: false
model:
  kind: lstm
  embedding_dim: 8
  lstm_units: 8
  dropout: 0.0
trainer:
  optimizer: adam
  decay: constant
  learning_rate: 1.0e-2
  epochs: 1
  checkpoint_every_steps: 2
  log_every_steps: 2
  best_metric: val_accuracy
"""
TEXTS = ["好看的电影", "很差的服务", "非常满意", "太失望了", "推荐购买", "不值这个价", "质量很好", "再也不来"]


class Result:
    """Exit status and output of one binary run."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    @property
    def error_lines(self):
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def __repr__(self):
        return f"Result(rc={self.returncode}, stderr tail={self.stderr[-1500:]!r})"


class BinaryServer:
    """Runs `python -m trainers.<name> ...` in forked children of one TensorFlow process."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, SERVER], cwd=ROOT, env=dict(os.environ, **QUIET_ENV),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def run(self, binary, *args, env=None, prepare=None):
        request = {"module": f"trainers.{binary}", "args": [str(a) for a in args], "env": env or {},
                   "cwd": ROOT, "prepare": prepare}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        return Result(reply["returncode"], reply["stdout"], reply["stderr"])

    def close(self):
        self.process.stdin.close()
        self.process.kill()  # TensorFlow's interpreter shutdown takes seconds; nothing is left to flush
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def binaries():
    server = BinaryServer()
    yield server
    server.close()


def binary_command(binary, *args):
    return [sys.executable, "-m", f"trainers.{binary}", *[str(a) for a in args]]


def run_binary(binary, *args, timeout=300, env=None):
    """Runs a binary as a real `python -m` subprocess; returns its Result."""
    completed = subprocess.run(binary_command(binary, *args), cwd=ROOT, capture_output=True, text=True,
                               timeout=timeout, env=dict(os.environ, **QUIET_ENV, **(env or {})))
    return Result(completed.returncode, completed.stdout, completed.stderr)


def start_binary(binary, *args, log_path, env=None):
    """Starts a binary as a subprocess writing stdout+stderr to `log_path`; returns the Popen."""
    log = open(log_path, "w")
    return subprocess.Popen(binary_command(binary, *args), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **QUIET_ENV, **(env or {})))


def kill_hard(process):
    """SIGKILLs a process (no cleanup handlers run) and reaps it."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def checkpoint_steps(model_dir):
    """Steps of the complete step checkpoints (index + data) in a model dir, sorted."""
    if not os.path.isdir(model_dir):
        return []
    steps = []
    for name in os.listdir(model_dir):
        if name.startswith("ckpt-") and name.endswith(".index"):
            step = name[len("ckpt-"):-len(".index")]
            if step.isdigit() and os.path.exists(os.path.join(model_dir, f"ckpt-{step}.data-00000-of-00001")):
                steps.append(int(step))
    return sorted(steps)


def write_text_csv(path, rows, header=("text", "label"), newline="\n", encoding="utf-8"):
    lines = [",".join(header)] + [",".join(row) for row in rows]
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(newline.join(lines) + newline)
    return str(path)


def good_text_rows(copies=6):
    return [(text, "pos" if i % 2 == 0 else "neg") for _ in range(copies) for i, text in enumerate(TEXTS)]


def write_text_config(path, train):
    with open(path, "w", encoding="utf-8") as f:
        f.write(TINY_TEXT_CONFIG.format(train=train))
    return str(path)


def write_digits_csv(path, num_classes=10, rows_per_class=8, seed=0):
    """A numeric CSV like builtin:digits (64 features + label) for MLP runs."""
    rng = np.random.default_rng(seed)
    header = [f"f{i}" for i in range(64)] + ["label"]
    lines = [",".join(header)]
    for label in range(num_classes):
        for _ in range(rows_per_class):
            lines.append(",".join(f"{v:.3f}" for v in rng.normal(label, 1.0, 64)) + f",{label}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def mlp_model_dir(tmp_path_factory, binaries):
    """A trained mlp_digits model directory (2 epochs), made by the train binary."""
    model_dir = tmp_path_factory.mktemp("mlp_trained")
    result = binaries.run("train", "--config=configs/mlp_digits.yaml", f"--model_dir={model_dir}",
                          "--override=trainer.epochs=2", "--override=trainer.best_metric=null")
    assert result.returncode == 0, result
    return str(model_dir)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """A saved tiny BERT encoder (max_sequence_length 32) with a vocab of the test texts' characters."""
    from tfmodels import data as tfm_data
    from tfmodels import models as tfm_models
    directory = tmp_path_factory.mktemp("encoder")
    characters = sorted({c for text in TEXTS for c in text})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + characters
    vocab_path = str(directory / "source_vocab.txt")
    tfm_data.save_vocab(vocab, vocab_path)
    encoder = tfm_models.build_bert_encoder("tiny", vocabulary_size=len(vocab), max_sequence_length=32)
    return tfm_models.save_encoder(encoder, vocab_path, str(directory / "encoder"), lowercase=True)
