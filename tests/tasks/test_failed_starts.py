"""A run that fails before training leaves nothing behind; anything trained or already there stays."""
import os

import pytest

from tfmodels.tasks import failed_starts

SETUP = frozenset({"config.yaml", "vocab.txt", "labels.json"})


def _start(run_dir, *names):
    failed_starts.record(str(run_dir), SETUP)
    os.makedirs(run_dir, exist_ok=True)
    for name in names:
        (run_dir / name).write_text("x")


def test_a_new_run_directory_with_only_setup_files_is_removed(tmp_path):
    with pytest.raises(ValueError):
        with failed_starts.removed_on_error():
            _start(tmp_path / "run", "config.yaml", "vocab.txt")
            raise ValueError("bad input")
    assert not (tmp_path / "run").exists()


def test_an_existing_directory_keeps_what_it_held(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        with failed_starts.removed_on_error():
            _start(tmp_path / "run", "config.yaml")
            raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path / "run")) == ["notes.txt"]


def test_a_run_that_trained_is_left_whole(tmp_path):
    with pytest.raises(ValueError):
        with failed_starts.removed_on_error():
            _start(tmp_path / "run", "config.yaml", "checkpoint")
            raise ValueError("loss is nan")
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint", "config.yaml"]


def test_a_pipeline_keeps_its_finished_stage_and_drops_the_failed_one(tmp_path):
    with pytest.raises(ValueError):
        with failed_starts.removed_on_error():
            _start(tmp_path / "run", "config.yaml", "vocab.txt")
            _start(tmp_path / "run" / "pretrain", "config.yaml", "checkpoint")
            _start(tmp_path / "run" / "finetune", "config.yaml", "labels.json")
            raise ValueError("sequence_length above the encoder's")
    assert sorted(os.listdir(tmp_path / "run")) == ["config.yaml", "pretrain", "vocab.txt"]
    assert sorted(os.listdir(tmp_path / "run" / "pretrain")) == ["checkpoint", "config.yaml"]


def test_success_and_exit_status_0_remove_nothing(tmp_path):
    with pytest.raises(SystemExit):
        with failed_starts.removed_on_error():
            _start(tmp_path / "a", "config.yaml")
            raise SystemExit(0)
    with failed_starts.removed_on_error():
        _start(tmp_path / "b", "config.yaml")
    assert os.listdir(tmp_path / "a") == ["config.yaml"] and os.listdir(tmp_path / "b") == ["config.yaml"]


def test_outside_the_block_nothing_is_recorded(tmp_path):
    _start(tmp_path / "run", "config.yaml")
    with pytest.raises(ValueError):
        with failed_starts.removed_on_error():
            raise ValueError("another run's failure")
    assert os.listdir(tmp_path / "run") == ["config.yaml"]


def test_a_task_run_from_python_that_fails_before_training_leaves_nothing(tmp_path):
    # As the binaries do: the tasks' run enters the block itself (here a ragged row of the training
    # data fails after the run directory got its config.yaml).
    from tests.reliability.conftest import good_text_rows, write_text_config
    from tfmodels.config import load_config
    from tfmodels.tasks import train
    data = tmp_path / "ragged.csv"
    data.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in good_text_rows()) + "多余,pos,extra\n",
                    encoding="utf-8")
    config = load_config(write_text_config(tmp_path / "config.yaml", data), model_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"ragged.csv:50: .*3 fields"):
        train.run(config)
    assert not (tmp_path / "run").exists()
