"""Fine-tuning utilities: freeze, replace heads, top-k and gradual unfreezing, LoRA, layer-wise LR decay.

Conventions shared with the builders: the head of every classifier is the
"head_dropout" + "logits" layers (and "mlm_head" + "mlm_logits" for the
pretrainer); everything else is the trunk or encoder. Each utility changes
trainability in place and returns (and logs) a `ParamCount`.

Changing trainability after a train step was traced requires the trainer to
rebuild its train step (and, for Keras `fit`, to recompile).
"""
from __future__ import annotations

import logging
import math
import re
from typing import NamedTuple

import keras
import keras_hub

from tfmodels.models.bert import BertPretrainer, find_encoder
from tfmodels.models.common import (HEAD_LAYER_NAMES, MaskedSequencePooling, check_dropout, check_int,
                                    classifier_head)
from tfmodels.models.encoder_outputs import wrapped_encoder

logger = logging.getLogger(__name__)

LORA_TARGET_LAYERS = ("query", "value")
LORA_SUFFIX = ".lora.h5"


class ParamCount(NamedTuple):
    """Trainable and total parameter counts of a model.

    Args:
        trainable: int. Parameters the optimizer updates.
        total: int. All parameters (trainable + frozen).
    """

    trainable: int
    total: int

    @property
    def frozen(self) -> int:
        """Parameters excluded from training."""
        return self.total - self.trainable

    def __str__(self) -> str:
        share = 100.0 * self.trainable / self.total if self.total else 0.0
        return f"trainable {self.trainable:,} / total {self.total:,} ({share:.2f}%)"


def _size(variables) -> int:
    return sum(math.prod(v.shape) for v in variables)


def count_params(model: keras.Model) -> ParamCount:
    """Counts trainable and total parameters (shared weights counted once).

    Args:
        model: keras.Model. Any built model.
    """
    return ParamCount(trainable=_size(model.trainable_weights), total=_size(model.weights))


def _report(model: keras.Model, action: str) -> ParamCount:
    count = count_params(model)
    logger.info("%s %s: %s", action, model.name, count)
    return count


def set_trainable(layer: keras.layers.Layer, value: bool) -> None:
    """Sets `trainable` on a layer and, recursively, on all its sublayers and variables.

    With the TensorFlow backend, assigning the value a layer already has is a
    no-op that does not reach its sublayers (a frozen wrapper may hold a
    trainable encoder), so every layer is visited and its flag toggled first.

    Args:
        layer: keras.layers.Layer. Layer or model to change.
        value: bool. The new trainability.
    """
    for sublayer in layer._flatten_layers(include_self=True, recursive=True):
        sublayer.trainable = not value
        sublayer.trainable = value


def _is_head(layer: keras.layers.Layer) -> bool:
    return layer.name in HEAD_LAYER_NAMES or layer.name.startswith("head_")


def _head_layers(model: keras.Model) -> list:
    heads = [layer for layer in model.layers if _is_head(layer)]
    if not heads:
        raise ValueError(f"model {model.name!r} has no head layer; expected one named "
                         f"{' or '.join(HEAD_LAYER_NAMES)}")
    return heads


def _set_only_head_trainable(model: keras.Model) -> None:
    _head_layers(model)
    set_trainable(model, True)
    # Non-head layers last: a head may hold a shared encoder layer (the tied
    # token embedding of the MLM head), which must end up frozen.
    for layer in sorted(model.layers, key=_is_head, reverse=True):
        set_trainable(layer, _is_head(layer))


def freeze_base(model: keras.Model) -> ParamCount:
    """Freezes the encoder or trunk; only the head stays trainable.

    Args:
        model: keras.Model. A classifier/pretrainer built by tfmodels.models.
    """
    _set_only_head_trainable(model)
    return _report(model, "freeze_base")


def unfreeze_all(model: keras.Model) -> ParamCount:
    """Makes every layer of the model trainable.

    Args:
        model: keras.Model. Any model.
    """
    set_trainable(model, True)
    return _report(model, "unfreeze_all")


def replace_head(model: keras.Model, num_classes: int, dropout: float | None = None,
                 name: str | None = None) -> keras.Model:
    """Returns a new model with a fresh head on the same (shared) trunk/encoder.

    Example: swap a 10-way head for a 100-way head; trunk weights are shared
    with `model`, not copied. Trainability of the trunk is left as it is.

    Args:
        model: keras.Model. A classifier built by tfmodels.models.
        num_classes: int. Classes of the new head (>= 2).
        dropout: float. Dropout before the new logits. Defaults to the old head's rate.
        name: str. Name of the new model. Defaults to the old model's name.
    """
    old_dropout = next((layer for layer in model.layers if layer.name == "head_dropout"), None)
    if old_dropout is None:
        raise ValueError(f"model {model.name!r} has no 'head_dropout' layer; replace_head "
                         "needs a classifier built by tfmodels.models")
    if dropout is None:
        dropout = old_dropout.rate
    check_dropout(dropout)
    initializer = "glorot_uniform"
    if any(wrapped_encoder(layer) is not None for layer in model.layers):
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
    logits = classifier_head(old_dropout.input, num_classes, dropout, initializer)
    new_model = keras.Model(inputs=model.input, outputs=logits, name=name or model.name)
    _report(new_model, "replace_head")
    return new_model


def _uses_pooler(model: keras.Model) -> bool:
    if isinstance(model, keras_hub.models.BertBackbone):
        return True
    if isinstance(model, BertPretrainer):
        return False
    return not any(isinstance(layer, MaskedSequencePooling) for layer in model.layers)


def _embedding_layers(encoder: keras_hub.models.BertBackbone) -> list:
    return [encoder.token_embedding, encoder.position_embedding, encoder.segment_embedding,
            encoder.embeddings_layer_norm]


def check_top_k(encoder, k: int) -> None:
    """Raises ValueError unless `k` top layers of `encoder` can be trained: 0..num_layers."""
    check_int("k", k, 0)
    if k > encoder.num_layers:
        raise ValueError(f"k={k} is invalid; the encoder has {encoder.num_layers} layers, "
                         f"choose 0..{encoder.num_layers}")


def unfreeze_top_k(model: keras.Model, k: int) -> ParamCount:
    """Trains only the top k transformer layers, the pooler (if used) and the head.

    The pooler stays frozen for mean-pooling classifiers and the pretrainer,
    whose outputs do not depend on it.

    Args:
        model: keras.Model. A BERT classifier/pretrainer (or the encoder itself).
        k: int. Number of top transformer layers to train, 0..num_layers.
    """
    encoder = find_encoder(model)
    check_top_k(encoder, k)
    if model is not encoder:
        _set_only_head_trainable(model)
    set_trainable(encoder, True)
    for layer in _embedding_layers(encoder):
        set_trainable(layer, False)
    cut = encoder.num_layers - k
    for index, layer in enumerate(encoder.transformer_layers):
        set_trainable(layer, index >= cut)
    set_trainable(encoder.pooled_dense, _uses_pooler(model))
    return _report(model, f"unfreeze_top_k(k={k})")


def layer_decay_multipliers(model: keras.Model, decay: float) -> dict[str, float]:
    """Learning-rate factors of layer-wise decay (as in ELECTRA and BEiT fine-tuning) for a BERT model.

    With L transformer layers, layer i (1 = bottom ... L = top) learns at decay^(L + 1 - i) times
    the rate and the embeddings (token, position, segment and their layer norm) at decay^(L + 1);
    the rest (pooler, head) keeps the rate.

    Args:
        model: keras.Model. A BERT classifier/pretrainer (or the encoder itself).
        decay: float. Factor per layer from the top, in (0, 1].

    Returns:
        dict of variable-path regex to factor, for `build_optimizer(lr_multipliers=...)`.

    Raises:
        ValueError: decay is out of range, or the model holds no BERT encoder (no layers to decay).
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"layer decay {decay!r} is out of range; allowed: (0, 1]")
    try:
        encoder = find_encoder(model)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no transformer encoder, so no layers to decay; "
                         "layer decay needs a BERT model") from None
    depth = encoder.num_layers
    groups = [(layer, decay ** (depth - index)) for index, layer in enumerate(encoder.transformer_layers)]
    groups += [(layer, decay ** (depth + 1)) for layer in _embedding_layers(encoder)]
    return {f"^{re.escape(_variable_prefix(layer))}/": factor for layer, factor in groups}


def _variable_prefix(layer: keras.layers.Layer) -> str:
    """The path every variable of `layer` starts with (e.g. "transformer_layer_0")."""
    directories = [variable.path.rsplit("/", 1)[0] for variable in layer.variables]
    parts = [directory.split("/") for directory in directories]
    common = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return "/".join(common)


class GradualUnfreezer:
    """Unfreezes a BERT model top-down: head (+ pooler) first, one more layer every N.

    At boundary b (steps or epochs done) the top `b // every` transformer layers
    are trainable; one stage after all layers, the embeddings are too. Call
    `update` at every step/epoch boundary; when it returns True the trainer must
    rebuild its train step (trainable variables changed).

    Args:
        model: keras.Model. A BERT classifier/pretrainer.
        every: int. Boundaries between two unfreezing stages (>= 1).

    Example:
        >>> unfreezer = GradualUnfreezer(model, every=100)
        >>> if unfreezer.update(step):
        ...     train_step = make_train_step(model)
    """

    def __init__(self, model: keras.Model, every: int = 1):
        check_int("every", every, 1)
        self.model = model
        self.every = every
        self.encoder = find_encoder(model)
        self.stage: int | None = None
        self.update(0)

    @property
    def num_stages(self) -> int:
        """Stages 0..num_layers unfreeze top layers; the last one unfreezes everything."""
        return self.encoder.num_layers + 2

    def update(self, boundary: int) -> bool:
        """Applies the stage for `boundary`; returns whether trainability changed.

        Args:
            boundary: int. Steps (or epochs) completed so far, >= 0.
        """
        check_int("boundary", boundary, 0)
        stage = min(boundary // self.every, self.num_stages - 1)
        if stage == self.stage:
            return False
        self.stage = stage
        if stage <= self.encoder.num_layers:
            self.count = unfreeze_top_k(self.model, stage)
        else:
            self.count = unfreeze_all(self.model)
        return True


def _lora_layers(encoder: keras_hub.models.BertBackbone) -> list:
    return [layer for layer in encoder._flatten_layers(include_self=False)
            if getattr(layer, "lora_enabled", False)]


def apply_lora(model: keras.Model, rank: int) -> ParamCount:
    """Adds LoRA to the attention query/value projections; trains only LoRA + head.

    Uses keras-hub `enable_lora(rank)` (alpha = rank); the projections' kernels
    and biases and all other encoder weights are frozen.

    Args:
        model: keras.Model. A BERT classifier/pretrainer (or the encoder itself).
        rank: int. LoRA rank (>= 1).
    """
    check_int("rank", rank, 1)
    encoder = find_encoder(model)
    if _lora_layers(encoder):
        raise ValueError(f"model {model.name!r} already has LoRA; call merge_lora first")
    if model is not encoder:
        _set_only_head_trainable(model)
    encoder.enable_lora(rank, target_layer_names=list(LORA_TARGET_LAYERS))
    for layer in _lora_layers(encoder):
        if layer.bias is not None:
            layer.bias.trainable = False
    return _report(model, f"apply_lora(rank={rank})")


def _delete_variables(layer: keras.layers.Layer, names) -> None:
    # Same as `del layer.<name>` minus the gc.collect() Keras runs per deleted
    # variable (about a second each once TensorFlow is loaded).
    for name in names:
        layer._untrack_variable(getattr(layer, name))
        super(keras.layers.Layer, layer).__delattr__(name)


def merge_lora(model: keras.Model) -> ParamCount:
    """Folds the LoRA updates into the projection kernels and removes the LoRA weights.

    Outputs are unchanged; the merged kernels stay frozen.

    Args:
        model: keras.Model. A model after `apply_lora`.
    """
    encoder = find_encoder(model)
    layers = _lora_layers(encoder)
    if not layers:
        raise ValueError(f"model {model.name!r} has no LoRA layers; call apply_lora first")
    for layer in layers:
        scale = layer.lora_alpha / layer.lora_rank
        delta = keras.ops.matmul(layer.lora_kernel_a, layer.lora_kernel_b)
        layer._kernel.assign(keras.ops.cast(
            keras.ops.cast(layer._kernel, "float32") + scale * delta, layer._kernel.dtype))
        _delete_variables(layer, ("lora_kernel_a", "lora_kernel_b"))
        layer.lora_enabled = False
        layer.lora_rank = None
        layer.lora_alpha = None
    encoder._lora_enabled_layers = []
    return _report(model, "merge_lora")


def _check_lora_path(path) -> str:
    path = str(path)
    if not path.endswith(LORA_SUFFIX):
        raise ValueError(f"LoRA weights path {path!r} is invalid; the name must end in "
                         f"{LORA_SUFFIX!r}")
    return path


def save_lora_weights(model: keras.Model, path) -> None:
    """Saves only the LoRA weights of the model's encoder.

    Args:
        model: keras.Model. A model after `apply_lora`.
        path: str or Path. File name ending in ".lora.h5".
    """
    encoder = find_encoder(model)
    if not _lora_layers(encoder):
        raise ValueError(f"model {model.name!r} has no LoRA layers; call apply_lora first")
    encoder.save_lora_weights(_check_lora_path(path))


def load_lora_weights(model: keras.Model, path) -> None:
    """Loads LoRA weights saved by `save_lora_weights` (applies LoRA first if needed).

    Args:
        model: keras.Model. A model with the same encoder architecture.
        path: str or Path. File name ending in ".lora.h5".
    """
    encoder = find_encoder(model)
    path = _check_lora_path(path)
    if not _lora_layers(encoder):
        import h5py

        with h5py.File(path, "r") as handle:
            rank = int(handle["lora/vars/rank"][()])
        apply_lora(model, rank)
    encoder.load_lora_weights(path)
