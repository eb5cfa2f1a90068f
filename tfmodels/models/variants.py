"""Named BERT sizes in one table.

tiny/mini/small/medium come from the compact-BERT paper (Turc et al. 2019),
base/large from the BERT paper (Devlin et al. 2018). The feed-forward width is
always 4 * hidden_dim.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BertVariant:
    """Architecture sizes of one named BERT variant.

    Args:
        num_layers: int. Number of transformer layers (L).
        hidden_dim: int. Width of the hidden states (H).
        num_heads: int. Attention heads per layer (A).
    """

    num_layers: int
    hidden_dim: int
    num_heads: int

    @property
    def intermediate_dim(self) -> int:
        """Feed-forward width, 4 * hidden_dim."""
        return 4 * self.hidden_dim

    def as_kwargs(self) -> dict:
        """Keyword arguments for `keras_hub.models.BertBackbone`."""
        return {
            "num_layers": self.num_layers,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
        }


VARIANTS: dict[str, BertVariant] = {
    "tiny": BertVariant(num_layers=2, hidden_dim=128, num_heads=2),
    "mini": BertVariant(num_layers=4, hidden_dim=256, num_heads=4),
    "small": BertVariant(num_layers=4, hidden_dim=512, num_heads=8),
    "medium": BertVariant(num_layers=8, hidden_dim=512, num_heads=8),
    "base": BertVariant(num_layers=12, hidden_dim=768, num_heads=12),
    "large": BertVariant(num_layers=24, hidden_dim=1024, num_heads=16),
}


def get_variant(name: str) -> BertVariant:
    """Returns the sizes of a named BERT variant.

    Args:
        name: str. One of the keys of `VARIANTS` (tiny, mini, small, medium,
            base, large).

    Raises:
        ValueError: `name` is not a known variant.
    """
    if name not in VARIANTS:
        raise ValueError(
            f"variant {name!r} unknown; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def bert_encoder_param_count(
    num_layers: int,
    hidden_dim: int,
    intermediate_dim: int,
    vocabulary_size: int,
    max_sequence_length: int = 512,
    num_segments: int = 2,
) -> int:
    """Counts the parameters of a BERT encoder (with pooler) without building it.

    Matches `keras_hub.models.BertBackbone`: token, position and segment
    embeddings plus their layer norm; per layer the Q/K/V/output projections,
    two layer norms and the two feed-forward denses; the tanh pooler.

    Args:
        num_layers: int. Transformer layers.
        hidden_dim: int. Hidden width.
        intermediate_dim: int. Feed-forward width.
        vocabulary_size: int. Token vocabulary size.
        max_sequence_length: int. Position embeddings. Defaults to 512.
        num_segments: int. Segment (token type) embeddings. Defaults to 2.
    """
    h, i = hidden_dim, intermediate_dim
    embeddings = (vocabulary_size + max_sequence_length + num_segments) * h + 2 * h
    attention = 4 * (h * h + h)
    feed_forward = (h * i + i) + (i * h + h)
    layer_norms = 2 * (2 * h)
    pooler = h * h + h
    return embeddings + num_layers * (attention + feed_forward + layer_norms) + pooler
