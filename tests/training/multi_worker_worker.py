"""One worker of the multi-worker test: trains a tiny MLP and saves its final weights.

Usage: python multi_worker_worker.py MODEL_DIR OUTPUT_NPZ (TF_CONFIG set by the caller).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset  # noqa: E402
from tfmodels.training import Trainer, build_optimizer, get_strategy, writable_dir  # noqa: E402


def main(model_dir, output_path):
    strategy = get_strategy("multi_worker")
    trainer = Trainer.from_builder(
        build_mlp, lambda: build_optimizer("adamw", 1e-2, decay="constant", clipnorm=1.0),
        strategy=strategy, seed=0, model_dir=model_dir, checkpoint_every_steps=2, verbose=0)
    x, y = make_classification_arrays(num_examples=64)
    history = trainer.fit(make_dataset(x, y, 16, shuffle_seed=2), epochs=2)
    # the same model_dir maps to the same directory within a process: where this one wrote
    write_dir = writable_dir(model_dir, strategy)
    np.savez(output_path, *[w.numpy() for w in trainer.model.weights],
             loss=np.array(history["loss"]), is_chief=np.array(trainer.is_chief),
             write_dir=np.array(write_dir), wrote=np.array(sorted(os.listdir(write_dir))))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
