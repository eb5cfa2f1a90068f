"""Trains a classifier (MLP, LSTM or BERT) from scratch, evaluates it and saves it to --model_dir.

Example:
    python -m trainers.train --config=configs/mlp_digits.yaml --model_dir=runs/mlp_digits
"""

from trainers import flags as common

common.define_flags()


def main(argv):
    del argv
    config = common.resolve_config("train")  # before the task's import loads TensorFlow: bad configs fail fast
    from tfmodels.tasks import train
    train.run(config)


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
