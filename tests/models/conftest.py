"""Fixtures for model tests: tiny BERT encoders and text batches."""
import keras
import pytest

from model_test_data import MAX_LENGTH, VOCAB_SIZE, make_text_batch
from tfmodels.models import build_bert_encoder


@pytest.fixture
def tiny_encoder():
    """A 2-layer, 32-wide BERT encoder without dropout (deterministic outputs)."""
    keras.utils.set_random_seed(0)
    return build_bert_encoder("tiny", vocabulary_size=VOCAB_SIZE, max_sequence_length=MAX_LENGTH,
                              dropout=0.0, hidden_dim=32, num_heads=2, intermediate_dim=64)


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
