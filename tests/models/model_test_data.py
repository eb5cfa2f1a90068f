"""Sizes and batch factory shared by the model tests."""
import numpy as np

VOCAB_SIZE = 64
MAX_LENGTH = 16


def make_text_batch(batch_size=3, length=8, vocab_size=VOCAB_SIZE, num_masks=None, seed=0):
    """A text batch of the ARCHITECTURE.md contract; row 1 is padded after 5 tokens."""
    rng = np.random.default_rng(seed)
    padding_mask = np.ones((batch_size, length), "int32")
    padding_mask[1, 5:] = 0
    batch = {
        "token_ids": (rng.integers(5, vocab_size, (batch_size, length))
                      * padding_mask).astype("int32"),
        "padding_mask": padding_mask,
        "segment_ids": np.zeros((batch_size, length), "int32"),
    }
    if num_masks:
        positions = np.arange(1, num_masks + 1, dtype="int32")
        batch["mask_positions"] = np.tile(positions, (batch_size, 1))
    return batch
