"""Pretraining of a BERT encoder (masked LM or ELECTRA); saves the encoder with its vocab.txt for fine-tuning."""

from __future__ import annotations

import dataclasses

from tfmodels import data as tfm_data
from tfmodels import models as tfm_models
from tfmodels import training as tfm_training
from tfmodels.config import ExperimentConfig
from tfmodels.tasks import common

ENCODER_DIR = "encoder"


def run(config: ExperimentConfig, model_dir: str | None = None) -> dict:
    """Builds (or reuses) the vocabulary, pretrains, and writes `<model_dir>/encoder/`.

    Returns:
        dict with `encoder_dir`, `vocab_path`, `history`, `metrics` (held-out masked-LM loss,
        accuracy, perplexity; for electra the `Electra` objective's metrics) and `tokens_per_second`.
    """
    started = common.start_run(config, model_dir)
    corpus = common.read_corpus(config)
    print(f"corpus: {len(corpus.texts):,} lines, {corpus.num_characters():,} characters "
          f"from {', '.join(corpus.part_names)}", flush=True)
    vocab_path = common.ensure_vocab(config, started.output_dir, corpus.texts)
    return pretrain_encoder(started, corpus.texts, vocab_path)


def mlm_datasets(config: ExperimentConfig, texts, tokenizer):
    """Train and held-out masked-LM datasets; the held-out part is every 100th line."""
    d = config.data
    sequence_length = d.pretrain_sequence_length or d.sequence_length
    heldout = texts[::100]
    train_texts = [t for i, t in enumerate(texts) if i % 100]
    kwargs = dict(mask_rate=d.mask_rate, max_predictions=d.max_predictions, whole_word=d.whole_word_masking)
    train = tfm_data.mlm_dataset(train_texts, tokenizer, sequence_length, common.batch_size(config, config.pretrain),
                                 shuffle=True,
                                 repeat=True, seed=config.seed, **kwargs)
    evaluation = tfm_data.mlm_dataset(heldout, tokenizer, sequence_length, d.eval_batch_size, shuffle=False,
                                      repeat=False, seed=config.seed, **kwargs)
    return train, evaluation, len(train_texts)


def init_token_embeddings(encoder, texts, tokenizer, seed: int) -> None:
    """Replaces random token embeddings by PPMI-SVD co-occurrence vectors of the corpus."""
    import numpy as np
    from tfmodels.data.cooccurrence import cooccurrence_vectors
    sequences = tfm_data.token_id_lists(tokenizer, texts)
    table = encoder.token_embedding.embeddings
    vectors, has_vector = cooccurrence_vectors(sequences, table.shape[0], table.shape[1], seed=seed)
    table.assign(np.where(has_vector[:, None], vectors, table.numpy()))
    print(f"token embeddings initialized from co-occurrence statistics ({int(has_vector.sum()):,} of "
          f"{len(has_vector):,} tokens)", flush=True)


def pretraining_model(config: ExperimentConfig, encoder):
    """The model and Trainer objective of `pretrain.objective` around the encoder.

    Args:
        config: ExperimentConfig. Reads pretrain.objective, generator_width, electra_weight and seed.
        encoder: keras_hub.models.BertBackbone. The encoder that is pretrained and saved.

    Returns:
        (keras.Model, objective): the masked-LM pretrainer and "mlm", or the ELECTRA pretrainer and
        its `Electra` objective.
    """
    tc = config.pretrain
    if tc.objective == "electra":
        model = tfm_models.build_electra_pretrainer(encoder, tc.generator_width, seed=config.seed)
        return model, tfm_training.Electra(tc.electra_weight)
    return tfm_models.build_bert_pretrainer(encoder), "mlm"


def pretrain_encoder(started: common.Run, texts, vocab_path: str) -> dict:
    config, tc = started.config, started.config.pretrain
    tokenizer = tfm_data.make_tokenizer(vocab_path, lowercase=config.data.lowercase)
    train, heldout, _ = mlm_datasets(config, texts, tokenizer)
    if tc.objective == "electra":
        train, heldout = tfm_data.electra_dataset(train), tfm_data.electra_dataset(heldout)
    if not tc.steps:
        raise common.ConfigError("pretrain.steps must be set: masked-LM pretraining runs a number of steps")
    with started.strategy.scope():
        encoder = common.build_encoder(config, tokenizer.vocabulary_size())
        if config.model.pretrain_embedding_init == "cooccurrence":
            init_token_embeddings(encoder, texts, tokenizer, config.seed)
        model, objective = pretraining_model(config, encoder)
        optimizer = common.make_optimizer(tc, tc.steps)
        no_best = dataclasses.replace(tc, best_metric=None)  # the encoder is the last step's
        trainer = common.make_trainer(started, no_best, model, optimizer, started.model_dir, objective=objective,
                                      section="pretrain")
        plan = tfm_training.plan_steps(steps=tc.steps, steps_per_epoch=tc.steps_per_epoch or tc.steps)
        history = common.fit(trainer, plan, train, heldout)
    metrics = trainer.evaluate(heldout)
    print(f"held-out {tc.objective}: { {k: round(float(v), 4) for k, v in metrics.items()} }", flush=True)
    encoder_dir = started.path(ENCODER_DIR)
    tfm_models.save_encoder(encoder, vocab_path, encoder_dir)
    common.write_json(started.path(common.METRICS_FILE), {"heldout": metrics})
    return {"encoder_dir": encoder_dir, "vocab_path": vocab_path, "history": history, "metrics": metrics,
            "tokens_per_second": common.tokens_per_second(history)}
