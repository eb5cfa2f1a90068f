"""Tests for tfmodels.config: YAML loading, bases, overrides and validation errors."""

import glob
import os

import pytest
import yaml

from tfmodels import config as cfg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_round_trip_through_yaml(tmp_path):
    config = cfg.load_config(None)
    out = tmp_path / "config.yaml"
    cfg.save_config(config, str(out))
    assert cfg.load_config(str(out)) == config


def test_base_files_merge_key_by_key(tmp_path):
    write(tmp_path / "adamw.yaml", "trainer:\n  optimizer: adamw\n  learning_rate: 1e-4\n  weight_decay: 0.02\n")
    path = write(tmp_path / "exp.yaml", "base: adamw.yaml\ntrainer:\n  learning_rate: 3e-5\n")
    config = cfg.load_config(path)
    assert config.trainer.learning_rate == pytest.approx(3e-5)
    assert config.trainer.weight_decay == pytest.approx(0.02)


def test_overrides_and_flags_are_typed(tmp_path):
    config = cfg.load_config(None, ["trainer.learning_rate=3e-5", "model.hidden_units=[128, 64]",
                                    "finetune.mode=lora"], model_dir=str(tmp_path), precision="float32")
    assert config.trainer.learning_rate == pytest.approx(3e-5)
    assert config.model.hidden_units == [128, 64]
    assert config.finetune.mode == "lora"
    assert config.model_dir == str(tmp_path) and config.precision == "float32"


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    path = write(tmp_path / "exp.yaml", "name: x\ntrainer:\n  learning_rat: 3e-5\n")
    with pytest.raises(cfg.ConfigError, match=r"exp\.yaml:3: unknown key 'trainer\.learning_rat'; "
                                              r"did you mean 'trainer\.learning_rate'"):
        cfg.load_config(path)


def test_an_unknown_section_from_an_override_names_the_override(tmp_path):
    path = write(tmp_path / "exp.yaml", "name: x\ntrainer:\n  epochs: 1\n")
    with pytest.raises(cfg.ConfigError, match=r"^--override trainr\.epochs: unknown key 'trainr'"):
        cfg.load_config(path, ["trainr.epochs=2"])
    with pytest.raises(cfg.ConfigError, match=r"^--override trainer\.epoch: unknown key 'trainer\.epoch'"):
        cfg.load_config(path, ["trainer.epoch=2"])


def test_a_key_given_twice_is_refused_at_its_second_line(tmp_path):
    path = write(tmp_path / "exp.yaml", "name: x\ntrainer:\n  learning_rate: 0.1\ntrainer:\n  epochs: 2\n")
    with pytest.raises(cfg.ConfigError, match=r"exp\.yaml:4: duplicate key 'trainer' \(first at line 2\); "
                                              r"allowed: each key once$"):
        cfg.load_config(path)
    path = write(tmp_path / "exp2.yaml", "trainer:\n  epochs: 1\n  epochs: 2\n")
    with pytest.raises(cfg.ConfigError, match=r"exp2\.yaml:3: duplicate key 'trainer\.epochs'"):
        cfg.load_config(path)


def test_a_missing_base_file_is_named_where_it_is_included(tmp_path):
    path = write(tmp_path / "exp.yaml", "name: x\nbase: [nonexistent.yaml]\n")
    with pytest.raises(cfg.ConfigError, match=r"exp\.yaml:2: base file 'nonexistent\.yaml' not found"):
        cfg.load_config(path)


def test_wrong_type_names_key(tmp_path):
    path = write(tmp_path / "exp.yaml", "trainer:\n  epochs: three\n")
    with pytest.raises(cfg.ConfigError, match=r"exp\.yaml:2: trainer\.epochs must be int"):
        cfg.load_config(path)


def test_bool_is_not_an_int():
    with pytest.raises(cfg.ConfigError, match="data.batch_size must be int"):
        cfg.load_config(None, ["data.batch_size=true"])


def test_choice_lists_allowed_values():
    with pytest.raises(cfg.ConfigError, match="finetune.mode='half' is not allowed; choose one of full, frozen"):
        cfg.load_config(None, ["finetune.mode=half"])


def test_study_pretraining_is_shared_or_per_seed():
    assert cfg.load_config(None).study.pretraining == "shared"
    assert cfg.load_config(None, ["study.pretraining=per_seed"]).study.pretraining == "per_seed"
    with pytest.raises(cfg.ConfigError, match="study.pretraining='once' is not allowed; choose one of shared, per_seed"):
        cfg.load_config(None, ["study.pretraining=once"])


def test_truncation_checks_name_the_file_line_and_the_allowed_values(tmp_path):
    config = cfg.load_config(None, ["data.truncation=head_tail", "data.head_tokens=32"])
    assert (config.data.truncation, config.data.head_tokens) == ("head_tail", 32)
    path = write(tmp_path / "exp.yaml", "data:\n  sequence_length: 64\n  truncation: head_tail\n  head_tokens: 63\n")
    with pytest.raises(cfg.ConfigError, match=r"exp\.yaml:4: data\.head_tokens=63 invalid; allowed: an int in \[0, 62\]"):
        cfg.load_config(path)
    with pytest.raises(cfg.ConfigError, match=r"--override data\.truncation: data\.truncation='head_tail' "
                                              r"invalid with text pairs; allowed: head"):
        cfg.load_config(None, ["data.text_pair_column=b", "data.truncation=head_tail"])
    with pytest.raises(cfg.ConfigError, match=r"--override data\.head_tokens: data\.head_tokens=32 invalid with "
                                              r"truncation='head'"):
        cfg.load_config(None, ["data.head_tokens=32"])
    with pytest.raises(cfg.ConfigError, match="data.truncation='tail' is not allowed; choose one of head, head_tail"):
        cfg.load_config(None, ["data.truncation=tail"])


def test_word_segmenter_needs_whole_word_masking_and_a_known_segmenter(tmp_path):
    config = cfg.load_config(None, ["data.whole_word_masking=true", "data.word_segmenter=jieba"])
    assert config.data.word_segmenter == "jieba"
    path = write(tmp_path / "exp.yaml", "data:\n  mask_rate: 0.2\n  word_segmenter: jieba\n")
    with pytest.raises(cfg.ConfigError, match=r"exp\.yaml:3: data\.word_segmenter='jieba' needs "
                                              r"data\.whole_word_masking: true"):
        cfg.load_config(path)
    with pytest.raises(cfg.ConfigError, match="data.word_segmenter='thulac' is not allowed; choose one of "
                                              "wordpiece, jieba"):
        cfg.load_config(None, ["data.whole_word_masking=true", "data.word_segmenter=thulac"])


def test_bad_override_syntax():
    with pytest.raises(cfg.ConfigError, match="expected section.key=value"):
        cfg.load_config(None, ["trainer.learning_rate"])


def test_missing_file_and_invalid_yaml(tmp_path):
    with pytest.raises(cfg.ConfigError, match="config file not found"):
        cfg.load_config(str(tmp_path / "nope.yaml"))
    path = write(tmp_path / "bad.yaml", "trainer: [1, 2\n")
    with pytest.raises(cfg.ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        cfg.load_config(path)


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(cfg.ConfigError, match="invalid YAML"):
        cfg.load_config(path)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*.yaml"))))
def test_every_shipped_config_loads(path):
    with open(path, encoding="utf-8") as f:
        assert isinstance(yaml.safe_load(f), dict)
    cfg.load_config(path)


def test_a_run_directory_without_write_permission_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(cfg.os, "access", lambda path, mode: False)  # as a non-root user on a read-only parent
    with pytest.raises(cfg.ConfigError, match=f"model_dir='{tmp_path}/new/run' cannot be written: no write permission "
                                          f"on {tmp_path}"):
        cfg.check_model_dir(str(tmp_path / "new" / "run"))
    cfg.check_writable_dir("gs://bucket/run", "model_dir")  # remote: left to the writer
