"""Fixtures for model tests: tiny BERT encoders and text batches."""
import keras
import numpy as np
import pytest

from tfmodels.models import build_bert_encoder

VOCAB_SIZE = 64
MAX_LENGTH = 16


@pytest.fixture
def tiny_encoder():
    """A 2-layer, 32-wide BERT encoder without dropout (deterministic outputs)."""
    keras.utils.set_random_seed(0)
    return build_bert_encoder("tiny", vocabulary_size=VOCAB_SIZE, max_sequence_length=MAX_LENGTH,
                              dropout=0.0, hidden_dim=32, num_heads=2, intermediate_dim=64)


def make_text_batch(batch_size=3, length=8, vocab_size=VOCAB_SIZE, num_masks=None, seed=0):
    """A text batch of the ARCHITECTURE.md contract; row 1 is padded after 5 tokens."""
    rng = np.random.default_rng(seed)
    padding_mask = np.ones((batch_size, length), "int32")
    padding_mask[1, 5:] = 0
    batch = {
        "token_ids": (rng.integers(5, vocab_size, (batch_size, length)) * padding_mask).astype("int32"),
        "padding_mask": padding_mask,
        "segment_ids": np.zeros((batch_size, length), "int32"),
    }
    if num_masks:
        batch["mask_positions"] = np.tile(np.arange(1, num_masks + 1, dtype="int32"), (batch_size, 1))
    return batch


@pytest.fixture
def text_batch():
    """Factory for text batches: text_batch(batch_size=3, length=8, num_masks=None)."""
    return make_text_batch


@pytest.fixture
def bf16_policy():
    """Runs a test under the mixed_bfloat16 global policy, restoring float32 after."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.fixture
def round_trip(tmp_path):
    """Saves a model to .keras and reloads it with safe_mode=True."""
    def save_and_load(model, name="model.keras"):
        path = tmp_path / name
        model.save(path)
        return keras.saving.load_model(path, safe_mode=True)
    return save_and_load
