"""Resuming a run directory: the same config resumes, a config that changes what the run computes is
refused with the keys that differ, and nothing in the directory changes."""

import os
import shutil

import keras
import pytest

from tfmodels import models as tfm_models
from tfmodels.config import ConfigError, load_config, save_config
from tfmodels.fingerprints import encoder_fingerprint
from tfmodels.tasks import resume_check

DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "configs", "demo_zh_sentiment.yaml")
VOCAB = "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\n好\r\n"  # as a Windows editor saves it


def demo(*overrides):
    return load_config(DEMO, list(overrides))


@pytest.mark.parametrize("kind, override, key", [
    ("train", "trainer.learning_rate=0.1", "trainer.learning_rate"),
    ("train", "model.dropout=0.3", "model.dropout"),
    ("train", "seed=7", "seed"),
    ("train", "precision=float32", "precision"),
    ("finetune", "finetune.mode=frozen", "finetune.mode"),
    ("finetune", "finetune.encoder=runs/other/encoder", "finetune.encoder"),
    ("pretrain", "data.mask_rate=0.4", "data.mask_rate"),
    ("pretrain", "pretrain.learning_rate=5e-4", "pretrain.learning_rate"),
    ("pretrain", "data.sequence_length=96", "data.sequence_length"),
    ("pipeline", "model.pooling=max_mean", "model.pooling"),
    ("pipeline", "study.pretraining=per_seed", "study.pretraining"),
])
def test_a_key_the_run_reads_is_a_difference(kind, override, key):
    differences = resume_check.config_differences(demo(), demo(override), kind)
    assert [d.split()[0] for d in differences] == [key]


@pytest.mark.parametrize("kind, override", [
    ("train", "pretrain.steps=100"),            # (b) reads no pretraining settings
    ("train", "data.mask_rate=0.4"),
    ("train", "finetune.encoder=runs/other/encoder"),
    ("finetune", "model.pretrain_embedding_init=random"),
    ("finetune", "data.lowercase=false"),      # the encoder's tokenizer decides, and the run records it
    ("pretrain", "model.pooling=max_mean"),    # pretraining reads no classifier settings
    ("pretrain", "trainer.learning_rate=2e-4"),
    ("pretrain", "model.dropout=0.2"),         # behind pretrain.dropout, which the demo sets
    ("pretrain", "data.batch_size=16"),        # behind pretrain.batch_size, which the demo sets
    ("pipeline", "trainer.epochs=4"),          # totals and cadence: raising them trains on
    ("pipeline", "study.seeds=5"),
    ("pipeline", "study.side_by_side=false"),  # where the rows train, not what they compute
    ("pipeline", "strategy=mirrored"),
    ("pipeline", "trainer.log_every_steps=7"),
    ("pipeline", "export.model_name=other"),
])
def test_mechanics_and_keys_the_run_does_not_read_may_change(kind, override):
    assert resume_check.config_differences(demo(), demo(override), kind) == []


def test_paths_are_compared_where_they_point(monkeypatch, tmp_path):
    relative = demo("finetune.encoder=runs/pre/encoder")
    absolute = demo(f"finetune.encoder={tmp_path}/runs/pre/encoder")
    monkeypatch.chdir(tmp_path)
    assert resume_check.config_differences(relative, absolute, "finetune") == []
    monkeypatch.chdir(tmp_path.parent)
    assert resume_check.config_differences(relative, absolute, "finetune") != []


def test_totals_may_grow_in_place_but_a_reused_run_must_match_them():
    saved, longer = demo(), demo("pretrain.steps=2800", "pretrain.in_domain_steps=1600")
    assert resume_check.config_differences(saved, longer, "pretrain") == []
    assert resume_check.config_differences(saved, longer, "pretrain", totals_may_differ=False) == [
        "pretrain.in_domain_steps 1500 → 1600", "pretrain.steps 2000 → 2800"]


@pytest.mark.parametrize("kind, overrides, expected", [
    # the weights may have trained past the new total, and config.yaml would claim the shorter run
    ("train", ["trainer.epochs=2"], ["trainer.epochs 3 → 2"]),
    ("pretrain", ["pretrain.steps=2800", "pretrain.in_domain_steps=1060"], ["pretrain.in_domain_steps 1500 → 1060"]),
    # with both set a run ends at the first, so setting a total where there was none can shorten it
    ("train", ["trainer.steps=100"], ["trainer.steps None → 100"]),
    ("pipeline", ["pretrain.in_domain_steps=0"], ["pretrain.in_domain_steps 1500 → 0"]),
])
def test_a_total_lowered_or_newly_set_in_place_is_a_difference(kind, overrides, expected):
    assert resume_check.config_differences(demo(), demo(*overrides), kind) == expected


@pytest.mark.parametrize("kind, off, override", [
    ("train", "data.crop_rate=0", "data.crop_min_tokens=8"),
    ("pretrain", "pretrain.objective=mlm", "pretrain.generator_width=0.5"),
    ("pretrain", "pretrain.in_domain_steps=0", "pretrain.in_domain_learning_rate=5e-3"),
    ("pipeline", "pretrain.in_domain_steps=0", "pretrain.in_domain_packing=true"),
])
def test_a_key_of_a_feature_counts_only_when_either_run_turns_the_feature_on(kind, off, override):
    assert resume_check.config_differences(demo(off), demo(off, override), kind) == []
    on = {"data.crop_rate": "data.crop_rate=0.25", "pretrain.objective": "pretrain.objective=electra",
          "pretrain.in_domain_steps": "pretrain.in_domain_steps=1500"}[off.split("=")[0]]
    key = override.split("=")[0]
    assert [d.split()[0] for d in resume_check.config_differences(demo(on), demo(on, override), kind)] == [key]
    assert key in [d.split()[0] for d in resume_check.config_differences(demo(off), demo(on, override), kind)]


def test_a_fallback_key_counts_when_the_run_reads_it():
    saved, new = demo("trainer.batch_size=null"), demo("trainer.batch_size=null", "data.batch_size=16")
    assert resume_check.config_differences(saved, new, "train") == ["data.batch_size 32 → 16"]


def finished_run(tmp_path, config):
    """A run directory as a run leaves it: config.yaml, vocab.txt and a checkpoint index."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(config, str(run_dir / "config.yaml"))
    (run_dir / "vocab.txt").write_text(VOCAB.replace("\r\n", "\n"), encoding="utf-8")
    (run_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-10"\n')
    return run_dir


def test_check_resume_refuses_with_every_difference_and_leaves_the_run_alone(tmp_path):
    run_dir = finished_run(tmp_path, demo())
    before = (run_dir / "config.yaml").read_bytes()
    with pytest.raises(ConfigError) as raised:
        resume_check.check_resume(demo("trainer.learning_rate=0.1", "model.dropout=0.3"), str(run_dir), "train")
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{run_dir}: holds a run trained with a different config")
    assert "model.dropout 0.1 → 0.3, trainer.learning_rate 0.0003 → 0.1" in message
    assert "use a new --model_dir" in message
    assert (run_dir / "config.yaml").read_bytes() == before


def test_a_run_of_another_kind_is_refused_by_its_kind(tmp_path):
    run_dir = finished_run(tmp_path, demo())
    resume_check.record_kind(str(run_dir), "finetune")
    with pytest.raises(ConfigError, match=rf"^{run_dir}: holds a finetune run, and this command starts a train run; "
                                          r"use a new --model_dir"):
        resume_check.check_resume(demo(), str(run_dir), "train")
    resume_check.check_resume(demo(), str(run_dir), "finetune")
    os.remove(run_dir / resume_check.KIND_FILE)  # a run written before kinds were recorded
    resume_check.check_resume(demo(), str(run_dir), "train")


def test_a_new_directory_or_one_without_a_checkpoint_starts_freely(tmp_path):
    resume_check.check_resume(demo(), str(tmp_path / "new"), "train")
    run_dir = finished_run(tmp_path, demo())
    os.remove(run_dir / "checkpoint")
    resume_check.check_resume(demo("trainer.learning_rate=0.1"), str(run_dir), "train")


def test_a_checkpoint_in_a_phase_directory_counts(tmp_path):
    run_dir = finished_run(tmp_path, demo())
    (run_dir / "frozen_phase").mkdir()
    shutil.move(run_dir / "checkpoint", run_dir / "frozen_phase" / "checkpoint")
    with pytest.raises(ConfigError, match="trainer.learning_rate"):
        resume_check.check_resume(demo("trainer.learning_rate=0.1"), str(run_dir), "finetune")


def test_the_vocabulary_is_compared_by_content(tmp_path):
    run_dir = finished_run(tmp_path, demo())
    same, other = tmp_path / "same_vocab.txt", tmp_path / "other_vocab.txt"
    shutil.copy(run_dir / "vocab.txt", same)
    other.write_text(VOCAB.replace("好", "坏"), encoding="utf-8")
    resume_check.check_resume(demo(f"data.vocab_path={same}"), str(run_dir), "train")
    same.write_bytes(VOCAB.encode("utf-8"))  # the same tokens, with the line endings the run did not keep
    resume_check.check_resume(demo(f"data.vocab_path={same}"), str(run_dir), "train")
    with pytest.raises(ConfigError, match=r"data.vocab_path '.*other_vocab.txt' is not the vocabulary the run kept"):
        resume_check.check_resume(demo(f"data.vocab_path={other}"), str(run_dir), "train")


def test_an_unreadable_saved_config_is_named(tmp_path):
    run_dir = finished_run(tmp_path, demo())
    (run_dir / "config.yaml").write_text("trainer: {learning_rat: 1}\n")
    with pytest.raises(ConfigError, match=r"config.yaml: cannot read the config this run was trained with"):
        resume_check.check_resume(demo(), str(run_dir), "train")


def saved_encoder(directory, vocabulary=VOCAB, change_weight=False):
    """A tiny encoder saved as pretraining saves one, from the same seed each time."""
    keras.utils.set_random_seed(0)
    tokens = vocabulary.split()
    encoder = tfm_models.build_bert_encoder("tiny", vocabulary_size=len(tokens), max_sequence_length=16)
    if change_weight:
        weights = encoder.token_embedding.get_weights()
        weights[0][5, 0] += 1.0
        encoder.token_embedding.set_weights(weights)
    directory.parent.mkdir(parents=True, exist_ok=True)
    vocab_file = directory.parent / f"{directory.name}_vocab.txt"
    vocab_file.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return tfm_models.save_encoder(encoder, str(vocab_file), str(directory), lowercase=True)


def test_an_encoder_fingerprint_follows_what_it_computes_not_where_or_when_it_was_saved(tmp_path):
    original = saved_encoder(tmp_path / "original")
    fingerprint = encoder_fingerprint(original)
    shutil.copytree(original, tmp_path / "copy")
    assert encoder_fingerprint(tmp_path / "copy") == fingerprint
    # Saved again: a new layer name in tokenizer.json, a new date in metadata.json, new HDF5 headers.
    assert encoder_fingerprint(saved_encoder(tmp_path / "saved_again")) == fingerprint
    assert (tmp_path / "saved_again" / "model.weights.h5").read_bytes() != \
        (tmp_path / "original" / "model.weights.h5").read_bytes()
    assert encoder_fingerprint(saved_encoder(tmp_path / "one_weight", change_weight=True)) != fingerprint
    assert encoder_fingerprint(saved_encoder(tmp_path / "other_token", VOCAB.replace("好", "坏"))) != fingerprint


def test_a_fine_tuning_run_compares_its_encoder_by_fingerprint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved_encoder(tmp_path / "runs" / "pre" / "encoder")
    config = demo("finetune.encoder=runs/pre/encoder")
    run_dir = finished_run(tmp_path, config)
    resume_check.record_encoder(str(run_dir), config)
    # The run and its encoder moved together (a pipeline run directory moved): it resumes.
    shutil.move(tmp_path / "runs" / "pre", tmp_path / "runs" / "moved")
    resume_check.check_resume(demo("finetune.encoder=runs/moved/encoder"), str(run_dir), "finetune")
    # The encoder changed where the run found it (its pretraining trained on): refused, by name.
    saved_encoder(tmp_path / "runs" / "moved" / "encoder", change_weight=True)
    with pytest.raises(ConfigError, match=r"holds a run trained with a different config \(finetune.encoder "
                                          r"'runs/moved/encoder' is not the encoder the run started from"):
        resume_check.check_resume(demo("finetune.encoder=runs/moved/encoder"), str(run_dir), "finetune")
    # A run written before fingerprints were recorded compares the path, as it did.
    os.remove(run_dir / resume_check.ENCODER_FINGERPRINT_FILE)
    resume_check.check_resume(demo("finetune.encoder=runs/pre/encoder"), str(run_dir), "finetune")
    with pytest.raises(ConfigError, match=r"finetune.encoder '.*runs/pre/encoder' → '.*runs/moved/encoder'"):
        resume_check.check_resume(demo("finetune.encoder=runs/moved/encoder"), str(run_dir), "finetune")
