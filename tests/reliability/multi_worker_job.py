"""One worker of a two-process MultiWorkerMirroredStrategy job that can be killed and restarted.

Usage: python multi_worker_job.py MODEL_DIR OUTPUT_NPZ (TF_CONFIG set by the caller). Trains a tiny
MLP for 120 steps with a checkpoint every 10, and saves the final weights and the step it resumed at.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.training.conftest import build_mlp, make_classification_arrays, make_dataset  # noqa: E402
from tfmodels.training import Trainer, build_optimizer, get_strategy  # noqa: E402

STEPS = 120


def main(model_dir, output_path):
    tf.config.experimental.enable_op_determinism()
    strategy = get_strategy("multi_worker")
    trainer = Trainer.from_builder(
        build_mlp, lambda: build_optimizer("adamw", 1e-2, decay="constant", clipnorm=1.0),
        strategy=strategy, seed=0, model_dir=model_dir, checkpoint_every_steps=10, keep_checkpoints=20, verbose=0)
    latest = tf.train.latest_checkpoint(model_dir)
    resumed_at = int(latest.rsplit("-", 1)[1]) if latest else 0
    print(f"starting at step {resumed_at}", flush=True)
    x, y = make_classification_arrays(num_examples=64)
    trainer.fit(make_dataset(x, y, 16, shuffle_seed=2), steps=STEPS, steps_per_epoch=STEPS)
    np.savez(output_path, *[w.numpy() for w in trainer.model.weights], resumed_at=np.array(resumed_at),
             step=np.array(int(trainer.global_step.numpy())), is_chief=np.array(trainer.is_chief))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
