"""Pretraining of a BERT encoder (masked LM or ELECTRA); saves the encoder with its vocab.txt for fine-tuning."""

from __future__ import annotations

import dataclasses

from tfmodels import data as tfm_data
from tfmodels import models as tfm_models
from tfmodels import training as tfm_training
from tfmodels.config import IN_DOMAIN_SETTINGS, ExperimentConfig
from tfmodels.tasks import common, failed_starts

IN_DOMAIN_DIR = "in_domain"
# What a pretraining stage writes after its general phase: the in-domain phase's checkpoints and
# logs, the encoder and its held-out metrics.
AFTER_GENERAL_PHASE = (IN_DOMAIN_DIR, common.ENCODER_DIR, common.METRICS_FILE)


@failed_starts.removed_on_error()
def run(config: ExperimentConfig, model_dir: str | None = None) -> dict:
    """Builds (or reuses) the vocabulary, pretrains, and writes `<model_dir>/encoder/`.

    Returns:
        dict with `encoder_dir`, `vocab_path`, `history`, `metrics` (held-out masked-LM loss,
        accuracy, perplexity; for electra the `Electra` objective's metrics) and `tokens_per_second`.
    """
    started = common.start_run(config, model_dir, kind="pretrain")
    corpus = common.read_corpus(config)
    print(f"corpus: {len(corpus.texts):,} lines, {corpus.num_characters():,} characters "
          f"from {', '.join(corpus.part_names)}", flush=True)
    vocab_path = common.ensure_vocab(config, started.output_dir, corpus.texts)
    return pretrain_encoder(started, corpus.texts, vocab_path)


def mlm_windows(config: ExperimentConfig, phase: str = "general") -> tuple[int, bool]:
    """(sequence length, packing) of a pretraining phase's masked-LM windows.

    The general phase packs consecutive lines into `data.pretrain_sequence_length` windows. The
    in-domain phase packs the same way, or with `pretrain.in_domain_packing` false puts one review
    in each window of `data.sequence_length` tokens, as fine-tuning sees it;
    `pretrain.in_domain_sequence_length` sets its length explicitly.
    """
    d, tc = config.data, config.pretrain
    general = d.pretrain_sequence_length or d.sequence_length
    if phase != "in_domain":
        return general, True
    default = general if tc.in_domain_packing else d.sequence_length
    return tc.in_domain_sequence_length or default, tc.in_domain_packing


def mlm_datasets(config: ExperimentConfig, texts, tokenizer, tc=None, phase: str = "general"):
    """Train and held-out masked-LM datasets; the held-out part is every 100th line, masked the same
    way at every evaluation. Unpacked lines are padded to their batch's longest with
    `data.dynamic_padding`; the in-domain phase's training lines are batched by
    `pretrain.in_domain_length_buckets`.

    Args:
        tc: TrainerConfig | None. The phase's settings (batch size). Defaults to `config.pretrain`.
        phase: str. general or in_domain: which windows (`mlm_windows`).
    """
    d = config.data
    sequence_length, packing = mlm_windows(config, phase)
    buckets = config.pretrain.in_domain_length_buckets if phase == "in_domain" else None
    heldout = texts[::100]
    train_texts = [t for i, t in enumerate(texts) if i % 100]
    kwargs = dict(mask_rate=d.mask_rate, max_predictions=d.max_predictions, whole_word=d.whole_word_masking,
                  word_segmenter=d.word_segmenter, pack_documents=packing, dynamic_padding=d.dynamic_padding)
    train = tfm_data.mlm_dataset(train_texts, tokenizer, sequence_length, common.batch_size(config, tc or config.pretrain),
                                 shuffle=True, repeat=True, seed=config.seed, length_buckets=buckets, **kwargs)
    evaluation = tfm_data.mlm_dataset(heldout, tokenizer, sequence_length, d.eval_batch_size, shuffle=False,
                                      repeat=False, seed=config.seed, fresh_masks=False, **kwargs)
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
    """Pretrains on the general corpus `texts`, then (with `pretrain.in_domain_steps`) on the training
    split's texts; saves `<run>/encoder/` with the fine-tuning dropout `model.dropout`."""
    config, tc = started.config, started.config.pretrain
    tokenizer = tfm_data.make_tokenizer(vocab_path, lowercase=config.data.lowercase)
    if not tc.steps:
        raise common.ConfigError("pretrain.steps must be set: masked-LM pretraining runs a number of steps")
    with started.strategy.scope():
        encoder = build_pretraining_encoder(config, tokenizer.vocabulary_size())
        if config.model.pretrain_embedding_init == "cooccurrence":
            init_token_embeddings(encoder, texts, tokenizer, config.seed)
        model, objective = pretraining_model(config, encoder)
    phases = [("general", texts, tc, started.model_dir)]
    if tc.in_domain_steps:
        phases.append(("in_domain", in_domain_texts(config), in_domain_settings(tc), started.stage_dir(IN_DOMAIN_DIR)))
    for phase, phase_texts, phase_tc, model_dir in phases:
        history, metrics = run_phase(started, (model, objective), phase, phase_texts, tokenizer, phase_tc,
                                     model_dir)
    encoder_dir = save_pretrained_encoder(started, encoder, vocab_path)
    common.write_json(started.path(common.METRICS_FILE), {"heldout": metrics})
    return {"encoder_dir": encoder_dir, "vocab_path": vocab_path, "history": history, "metrics": metrics,
            "tokens_per_second": common.tokens_per_second(history)}


def in_domain_settings(tc):
    """The in-domain phase's PretrainConfig: the stage's, with the phase's steps, learning rate and
    length-sorted parts (`pretrain.in_domain_*`, each defaulting to the stage's)."""
    return dataclasses.replace(
        tc, steps=tc.in_domain_steps, learning_rate=tc.in_domain_learning_rate or tc.learning_rate,
        length_sorted_parts=tc.in_domain_length_sorted_parts or tc.length_sorted_parts)


def with_in_domain_settings_of(config: ExperimentConfig, other: ExperimentConfig) -> ExperimentConfig:
    """`config` with `other`'s in-domain phase settings (`pretrain.in_domain_*`), which the general
    phase does not read. Where it matches `other` in every key pretraining reads, the two configs
    pretrain the same general phase (not conversely: `data.sequence_length` may shape only the
    in-domain phase's windows)."""
    in_domain = {name: getattr(other.pretrain, name) for name in IN_DOMAIN_SETTINGS}
    return dataclasses.replace(config, pretrain=dataclasses.replace(config.pretrain, **in_domain))


def in_domain_texts(config: ExperimentConfig) -> list[str]:
    """The texts of the fine-tuning data's training split (never validation or test)."""
    return list(common.load_text_splits(config).train.texts)


def run_phase(started: common.Run, model_and_objective, phase: str, texts, tokenizer, tc, model_dir: str):
    """One pretraining phase on `texts` with its own optimizer and checkpoints; returns
    (history, held-out metrics).

    Args:
        model_and_objective: tuple. `pretraining_model`'s (model, objective).
    """
    config = started.config
    model, objective = model_and_objective
    train, heldout, num_train = mlm_datasets(config, texts, tokenizer, tc, phase)
    if config.pretrain.objective == "electra":
        train, heldout = tfm_data.electra_dataset(train), tfm_data.electra_dataset(heldout)
    print(f"pretraining phase {phase}: {tc.steps:,} steps on {num_train:,} lines", flush=True)
    with started.strategy.scope():
        optimizer = common.make_optimizer(tc, tc.steps)
        no_best = dataclasses.replace(tc, best_metric=None)  # the encoder is the last step's
        trainer = common.make_trainer(started, no_best, model, optimizer, model_dir, objective=objective,
                                      section="pretrain")
        plan = tfm_training.plan_steps(steps=tc.steps, steps_per_epoch=tc.steps_per_epoch or tc.steps)
        history = common.fit(trainer, plan, train, heldout)
    metrics = trainer.evaluate(heldout)
    rounded = {k: round(float(v), 4) for k, v in metrics.items()}
    print(f"held-out {config.pretrain.objective} after phase {phase}: {rounded}", flush=True)
    return history, metrics


def build_pretraining_encoder(config: ExperimentConfig, vocabulary_size: int):
    """The encoder to pretrain, with dropout `pretrain.dropout` when set (else `model.dropout`)."""
    dropout = config.pretrain.dropout
    if dropout is None:
        return common.build_encoder(config, vocabulary_size)
    with_dropout = dataclasses.replace(config, model=dataclasses.replace(config.model, dropout=dropout))
    return common.build_encoder(with_dropout, vocabulary_size)


def save_pretrained_encoder(started: common.Run, encoder, vocab_path: str) -> str:
    """Saves the encoder's weights in an encoder built with `model.dropout`, the rate fine-tuning uses."""
    encoder = tfm_models.with_encoder_dropout(encoder, started.config.model.dropout)
    encoder_dir = started.path(common.ENCODER_DIR)
    tfm_models.save_encoder(encoder, vocab_path, encoder_dir, lowercase=started.config.data.lowercase)
    return encoder_dir
