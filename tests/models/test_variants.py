"""Tests for the named BERT variant table and the parameter-count formula."""
import pytest

from tfmodels.models import VARIANTS, bert_encoder_param_count, build_bert_encoder, get_variant

EXPECTED_SIZES = {  # (layers, hidden, heads)
    "tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8),
    "medium": (8, 512, 8), "base": (12, 768, 12), "large": (24, 1024, 16),
}


def _count(name, vocabulary_size=30522, max_sequence_length=512):
    variant = get_variant(name)
    return bert_encoder_param_count(variant.num_layers, variant.hidden_dim,
                                    variant.intermediate_dim, vocabulary_size,
                                    max_sequence_length)


@pytest.mark.parametrize("name", list(EXPECTED_SIZES))
def test_variant_sizes(name):
    variant = get_variant(name)
    assert (variant.num_layers, variant.hidden_dim, variant.num_heads) == EXPECTED_SIZES[name]
    assert variant.intermediate_dim == 4 * variant.hidden_dim
    assert variant.hidden_dim % variant.num_heads == 0


def test_variant_order_and_unknown_name():
    assert list(VARIANTS) == ["tiny", "mini", "small", "medium", "base", "large"]
    with pytest.raises(ValueError, match="variant 'huge' unknown; choose one of tiny, mini, "
                                         "small, medium, base, large"):
        get_variant("huge")


@pytest.mark.parametrize("name", ["tiny", "mini"])
def test_formula_matches_built_encoder(name):
    encoder = build_bert_encoder(name, vocabulary_size=100, max_sequence_length=32)
    assert encoder.count_params() == _count(name, vocabulary_size=100, max_sequence_length=32)


def test_base_and_large_match_published_counts():
    # BERT paper: base 110M, large 340M (rounded); exact for vocab 30522, 512 positions.
    assert _count("base") == 109_482_240
    assert _count("large") == 335_141_888
    assert abs(_count("base") / 110e6 - 1) < 0.01
    assert abs(_count("large") / 340e6 - 1) < 0.02


@pytest.mark.slow
def test_base_built_count_matches_formula():
    encoder = build_bert_encoder("base", vocabulary_size=30522)
    assert encoder.count_params() == _count("base")
