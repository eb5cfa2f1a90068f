"""End-to-end tests of the task functions behind the binaries, on tiny configs and real data."""

import json
import os

import numpy as np
import pytest

from tfmodels import data as tfm_data
from tfmodels import models as tfm_models
from tfmodels.config import ConfigError, load_config
from tfmodels.tasks import common, evaluate, export, finetune, resume_check, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_file(name):
    return os.path.join(REPO, "configs", name)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("mlp"))
    config = load_config(config_file("mlp_digits.yaml"), ["trainer.epochs=8"], model_dir=model_dir)
    return train.run(config)


def test_mlp_trains_to_high_accuracy_and_saves_artifacts(mlp_run):
    model_dir = mlp_run["model_dir"]
    for name in ("config.yaml", "model.keras", "labels.json", "normalizer.json", "metrics.json"):
        assert os.path.isfile(os.path.join(model_dir, name)), name
    assert mlp_run["metrics"]["test"]["accuracy"] > 0.9
    with open(os.path.join(model_dir, "metrics.json")) as f:
        assert json.load(f)["test"]["accuracy"] == pytest.approx(mlp_run["metrics"]["test"]["accuracy"])
    predicted = common.read_predictions(model_dir)
    splits = train.load_feature_splits(load_config(os.path.join(model_dir, "config.yaml")))
    assert np.mean(predicted["test"] == splits.test.labels) == pytest.approx(mlp_run["metrics"]["test"]["accuracy"])


def test_mlp_frozen_trunk_finetune_keeps_trunk_weights(mlp_run, tmp_path):
    config = load_config(config_file("mlp_digits.yaml"),
                         ["trainer.epochs=2", f"finetune.encoder={mlp_run['model_dir']}", "finetune.mode=frozen"],
                         model_dir=str(tmp_path))
    result = finetune.run(config)
    base = common.load_model(os.path.join(mlp_run["model_dir"], "model.keras"))
    tuned = common.load_model(os.path.join(tmp_path, "model.keras"))
    trunk = [w for w in base.weights if "head" not in w.path and "logits" not in w.path]
    assert trunk
    tuned_by_path = {w.path: w for w in tuned.weights}
    for w in trunk:
        np.testing.assert_array_equal(w.numpy(), tuned_by_path[w.path].numpy())
    assert result["param_counts"].trainable < result["param_counts"].total


@pytest.mark.parametrize("mode", ["lora", "top_k", "gradual", "frozen_then_full"])
def test_an_mlp_is_fine_tuned_only_in_full_or_frozen_mode(mlp_run, tmp_path, mode):
    config = load_config(config_file("mlp_digits.yaml"), [f"finetune.encoder={mlp_run['model_dir']}",
                                                           f"finetune.mode={mode}"], model_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=rf"^finetune.mode='{mode}' needs a BERT model; allowed for "
                                          r"model.kind=mlp: full, frozen$"):
        finetune.run(config)
    assert not os.path.exists(tmp_path / "run")


def test_evaluate_and_export_mlp(mlp_run, tmp_path):
    config = evaluate.load_run_config(mlp_run["model_dir"])
    metrics = evaluate.run(config, split="test")
    assert metrics["accuracy"] == pytest.approx(mlp_run["metrics"]["test"]["accuracy"], abs=1e-6)
    export_config = export.load_run_config(mlp_run["model_dir"], overrides=[f"export.export_base={tmp_path}"])
    version_dir = export.run(export_config)
    assert version_dir.endswith(os.path.join("digits", "1"))


def test_missing_model_dir_is_a_config_error():
    with pytest.raises(ConfigError, match="model_dir is not set"):
        train.run(load_config(config_file("mlp_digits.yaml")))


def test_export_verification_tolerance_comes_from_the_config(mlp_run, tmp_path):
    from tfmodels.export import METADATA_FILENAME
    config = export.load_run_config(mlp_run["model_dir"], overrides=[f"export.export_base={tmp_path}",
                                                                     "export.verify_atol=0.003"])
    version_dir = export.run(config)
    with open(os.path.join(version_dir, "assets.extra", METADATA_FILENAME), encoding="utf-8") as f:
        verification = json.load(f)["verification"]
    assert verification["performed"] and verification["atol"] == 0.003


def test_throughput_of_a_run_resumed_after_its_last_step_is_not_reported_as_zero():
    from tfmodels.tasks import pipeline
    assert common.tokens_per_second({"tokens_per_second": [100.0, 300.0]}) == 200.0
    assert common.tokens_per_second({"loss": [0.5]}) is None  # no step ran: nothing was measured
    assert pipeline._throughput(None) == "not measured (resumed after its last step)"
    assert pipeline._throughput(12345.6) == "12,346 tokens/s"


def test_a_vocabulary_left_by_a_failed_start_is_rebuilt_and_a_resuming_runs_is_kept(tmp_path):
    config = load_config(config_file("lstm_sentiment_zh.yaml"), ["data.vocab_size=200"])
    stale = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "awful", "great"]  # another dataset's
    tfm_data.save_vocab(stale, str(tmp_path / "vocab.txt"))
    texts = ["这本书很好看", "质量太差了，不推荐"] * 10
    path = common.ensure_vocab(config, str(tmp_path), texts)
    assert "好" in tfm_data.load_vocab(path) and "awful" not in tfm_data.load_vocab(path)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')  # a run to resume
    tfm_data.save_vocab(stale, path)
    assert tfm_data.load_vocab(common.ensure_vocab(config, str(tmp_path), texts)) == stale


def test_evaluating_a_split_the_data_does_not_have_names_the_available_ones():
    examples = tfm_data.TextExamples(["很好", "太差"], [1, 0])
    splits = tfm_data.TextSplits(train=examples, validation=examples, label_names=["negative", "positive"])
    assert evaluate.split_examples(splits, "validation") is examples
    with pytest.raises(ConfigError, match=r"^--split=test: this run's data has no test split; available: "
                                          r"train, validation \(or --input_file=FILE\)$"):
        evaluate.split_examples(splits, "test")


def test_skipped_bad_records_are_reported_per_reason(tmp_path, capsys):
    rows = [f"{'很好看' if i % 2 else '太差了'}{i},{'positive' if i % 2 else 'negative'}" for i in range(40)]
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "\n".join(rows[:20] + ["多余,positive,extra"] + rows[20:]) + "\n",
                    encoding="utf-8")
    config = load_config(config_file("lstm_sentiment_zh.yaml"), [f"data.train={data}", "data.on_bad_record=skip"])
    splits = common.load_text_splits(config)
    assert sum(len(e) for e in splits.splits().values()) == 40
    printed = capsys.readouterr().out
    assert "bad records skipped: 1 of 41 read" in printed and f"{data}:22" in printed


def test_evaluate_and_export_name_a_pretraining_or_pipeline_run_they_cannot_read(tmp_path):
    for kind, expected in (("pretrain", "holds a pretraining run, not a classifier; allowed: a train or finetune "
                                        f"run (to fine-tune its encoder: --override=finetune.encoder={tmp_path}/encoder)"),
                           ("pipeline", f"holds a pipeline run; allowed: one of its classifier stages, such as "
                                        f"{tmp_path}/finetune")):
        resume_check.record_kind(str(tmp_path), kind)
        config = load_config(config_file("mlp_digits.yaml"), [f"export.export_base={tmp_path}/exports"],
                             model_dir=str(tmp_path))
        for task in (evaluate.run, export.run):
            with pytest.raises(ConfigError, match=f"^--model_dir={tmp_path} " + expected.replace("(", r"\(")
                               .replace(")", r"\)")):
                task(config)


def test_an_mlp_is_fine_tuned_only_from_an_mlp_run(tmp_path):
    encoder = tfm_models.build_bert_encoder("tiny", vocabulary_size=50, max_sequence_length=16)
    os.makedirs(tmp_path / "bert")
    common.save_model(tfm_models.build_bert_classifier(encoder, 2), str(tmp_path / "bert" / "model.keras"))
    config = load_config(config_file("mlp_digits.yaml"), [f"finetune.encoder={tmp_path / 'bert'}", "trainer.epochs=1"],
                         model_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"is not an MLP run \(its model takes padding_mask, segment_ids, "
                                          r"token_ids\); allowed for model.kind=mlp: an MLP run's directory"):
        finetune.run(config)
