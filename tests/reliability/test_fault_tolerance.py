"""Crash recovery: kill -9 at a random step, during a checkpoint write and during export."""
import json
import os
import random
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.reliability.conftest import checkpoint_steps, kill_hard, start_binary
from tests.subprocess_jobs import wait_for
from tfmodels.export import list_versions

MLP_FINETUNE = ["--config=configs/mlp_digits.yaml", "--override=deterministic=true", "--override=trainer.epochs=3",
                "--override=trainer.checkpoint_every_steps=5", "--override=trainer.best_metric=null",
                "--override=finetune.mode=frozen"]
TINY_PRETRAIN = ["--config=configs/demo_zh_sentiment.yaml", "--precision=float32", "--override=deterministic=true",
                 "--override=model.variant=tiny", "--override=model.max_sequence_length=64",
                 "--override=data.sequence_length=32", "--override=data.limit=256", "--override=data.vocab_size=600",
                 "--override=pretrain.batch_size=16", "--override=pretrain.steps=30",
                 "--override=pretrain.checkpoint_every_steps=3", "--override=pretrain.keep_checkpoints=20",
                 "--override=pretrain.log_every_steps=5", "--override=model.dropout=0.1",
                 "--override=pretrain.dropout=null", "--override=pretrain.in_domain_steps=6"]


def model_weights(model_dir):
    """Every saved value of the newest checkpoint in `model_dir` (model weights, optimizer slots,
    step, dropout RNG and data iterator state), by checkpoint key."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(model_dir)))
    return {key: reader.get_tensor(key) for key, dtype in reader.get_variable_to_dtype_map().items()
            if dtype != tf.variant
            and key not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def assert_same_weights(first, second):
    assert first.keys() == second.keys() and first
    assert any("_trainable_variables" in key or key.startswith("model/") for key in first)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def kill_at_random_checkpoint(binary, args, model_dir, log_path, candidates, seed):
    """Starts the binary, waits for a randomly chosen checkpoint step to exist, SIGKILLs it.

    It also waits for the state file to name a checkpoint: when the target is the first one, a kill
    between its files and the state file leaves nothing to resume from (the run starts over), and
    the callers test resuming.
    """
    target = random.Random(seed).choice(candidates)
    process = start_binary(binary, *args, f"--model_dir={model_dir}", log_path=log_path)

    def target_reached():
        return (any(step >= target for step in checkpoint_steps(model_dir))
                and tf.train.latest_checkpoint(str(model_dir)) is not None)

    try:
        wait_for(target_reached, 240, process, 0.01)
    finally:
        if process.poll() is None:
            kill_hard(process)
    assert process.returncode == -9, "the run finished before it could be killed"
    return checkpoint_steps(model_dir)


def test_kill_9_finetune_resumes_and_matches_an_uninterrupted_run(binaries, mlp_model_dir, tmp_path):
    args = MLP_FINETUNE + [f"--override=finetune.encoder={mlp_model_dir}"]
    reference = binaries.run("finetune", *args, f"--model_dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference
    killed_dir = tmp_path / "killed"
    written = kill_at_random_checkpoint("finetune", args, killed_dir, tmp_path / "killed.log", [5, 10, 20, 30], 1)
    assert written and not os.path.exists(killed_dir / "model.keras")
    latest_complete_step = int(tf.train.latest_checkpoint(str(killed_dir)).rsplit("-", 1)[1])
    resumed = binaries.run("finetune", *args, f"--model_dir={killed_dir}")
    assert resumed.returncode == 0, resumed
    # The kill can land while a later checkpoint's files are being written: the resume point is
    # the newest checkpoint the state file records, never a half-written one.
    step = latest_complete_step
    assert step in written
    assert f"resumed from {killed_dir}/ckpt-{step} at step {step}" in resumed.stdout
    assert_same_weights(model_weights(tmp_path / "reference"), model_weights(killed_dir))
    assert read_json(killed_dir / "metrics.json") == read_json(tmp_path / "reference" / "metrics.json")


def test_crash_during_a_checkpoint_write_resumes_from_the_previous_one(binaries, mlp_model_dir, tmp_path):
    args = MLP_FINETUNE + [f"--override=finetune.encoder={mlp_model_dir}", "--override=trainer.epochs=2"]
    reference = binaries.run("finetune", *args, f"--model_dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference
    run_dir = tmp_path / "crashed"
    crashed = binaries.run("finetune", *args, f"--model_dir={run_dir}", prepare="tests.reliability.crash_during_save",
                           env={"CRASH_AT_CHECKPOINT_STEP": "25", "CRASH_MODEL_DIR": str(run_dir)})
    assert crashed.returncode == -9, crashed
    assert os.path.isdir(run_dir / "ckpt-25_temp") and os.path.exists(run_dir / "ckpt-25.index")
    assert tf.train.latest_checkpoint(str(run_dir)).endswith("ckpt-20")
    tf.train.load_checkpoint(str(run_dir / "ckpt-20")).get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE")
    resumed = binaries.run("finetune", *args, f"--model_dir={run_dir}")
    assert resumed.returncode == 0, resumed
    assert f"resumed from {run_dir}/ckpt-20 at step 20" in resumed.stdout
    assert_same_weights(model_weights(tmp_path / "reference"), model_weights(run_dir))
    assert read_json(run_dir / "metrics.json") == read_json(tmp_path / "reference" / "metrics.json")


def test_kill_9_during_export_leaves_no_visible_version(mlp_model_dir, tmp_path):
    exports = tmp_path / "exports"
    process = start_binary("export", f"--model_dir={mlp_model_dir}", f"--export_base={exports}",
                           log_path=tmp_path / "export.log")
    model_dir = exports / "digits"
    try:
        wait_for(lambda: model_dir.is_dir() and any(n.startswith(".tmp-") for n in os.listdir(model_dir)),
                 240, process, 0.01)
        wait_for(lambda: any(os.path.exists(os.path.join(model_dir, n, "saved_model.pb"))
                             for n in os.listdir(model_dir)), 240, process, 0.01)
    finally:
        if process.poll() is None:
            kill_hard(process)
    assert process.returncode == -9, "the export finished before it could be killed"
    assert list_versions(str(model_dir)) == []
    assert all(name.startswith(".tmp-") for name in os.listdir(model_dir)), os.listdir(model_dir)
    # TF Serving only loads numeric version directories; the next export still claims 1.
    from tests.reliability.conftest import run_binary
    again = run_binary("export", f"--model_dir={mlp_model_dir}", f"--export_base={exports}", "--noverify")
    assert again.returncode == 0, again
    assert list_versions(str(model_dir)) == [1]


@pytest.mark.slow
def test_kill_9_pretrain_resumes_and_matches_an_uninterrupted_run(binaries, tmp_path):
    reference = binaries.run("pretrain", *TINY_PRETRAIN, f"--model_dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference
    killed_dir = tmp_path / "killed"
    written = kill_at_random_checkpoint("pretrain", TINY_PRETRAIN, killed_dir, tmp_path / "killed.log",
                                        [3, 6, 9, 12, 15, 18], 2)
    assert not os.path.exists(killed_dir / "encoder")
    latest_complete_step = int(tf.train.latest_checkpoint(str(killed_dir)).rsplit("-", 1)[1])
    written = [step for step in written if step <= latest_complete_step]  # not a half-written one
    resumed = binaries.run("pretrain", *TINY_PRETRAIN, f"--model_dir={killed_dir}")
    assert resumed.returncode == 0, resumed
    step = latest_complete_step
    assert f"resumed from {killed_dir}/ckpt-{step} at step {step}" in resumed.stdout
    # every checkpoint written before the kill is still there and loads
    for step in written:
        tf.train.load_checkpoint(str(killed_dir / f"ckpt-{step}"))
    assert_same_weights(model_weights(tmp_path / "reference"), model_weights(killed_dir))
    assert read_json(killed_dir / "metrics.json") == read_json(tmp_path / "reference" / "metrics.json")


MLP_TRAIN = ["--config=configs/mlp_digits.yaml", "--override=deterministic=true", "--override=trainer.epochs=3",
             "--override=trainer.checkpoint_every_steps=5", "--override=trainer.best_metric=null"]


@pytest.mark.parametrize("flags", [
    ["--strategy=mirrored", "--cpu_devices=2", "--precision=float32"],  # several GPUs, on two logical CPUs
    ["--strategy=default", "--precision=mixed_float16"],  # pre-Ampere GPUs: dynamic loss scaling
], ids=["mirrored", "mixed_float16"])
def test_kill_9_resume_under_mirrored_and_float16_matches_an_uninterrupted_run(flags, tmp_path):
    from tests.reliability.conftest import run_binary
    args = MLP_TRAIN + flags
    reference = run_binary("train", *args, f"--model_dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference
    killed_dir = tmp_path / "killed"
    written = kill_at_random_checkpoint("train", args, killed_dir, tmp_path / "killed.log", [5, 10, 20, 30], 3)
    assert written and not os.path.exists(killed_dir / "model.keras")
    step = int(tf.train.latest_checkpoint(str(killed_dir)).rsplit("-", 1)[1])
    resumed = run_binary("train", *args, f"--model_dir={killed_dir}")
    assert resumed.returncode == 0, resumed
    assert f"resumed from {killed_dir}/ckpt-{step} at step {step}" in resumed.stdout
    reference_state, resumed_state = model_weights(tmp_path / "reference"), model_weights(killed_dir)
    if "--precision=mixed_float16" in flags:  # the loss scale is part of the state that resumes
        scale_keys = [key for key in reference_state if "dynamic_scale" in key]
        assert scale_keys, sorted(reference_state)
    assert_same_weights(reference_state, resumed_state)
    assert read_json(killed_dir / "metrics.json") == read_json(tmp_path / "reference" / "metrics.json")
