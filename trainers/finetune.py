"""Fine-tunes a classifier on a pretrained encoder (or MLP trunk): full, frozen, top_k, gradual, lora, frozen_then_full.

Example:
    python -m trainers.finetune --config=configs/bert_finetune_sentiment_zh.yaml --override=finetune.encoder=runs/pretrain/encoder --model_dir=runs/finetune
"""

from trainers import flags as common

common.define_flags()


def main(argv):
    del argv
    config = common.resolve_config("finetune")  # before the task's import loads TensorFlow: bad configs fail fast
    from tfmodels.tasks import finetune
    finetune.run(config)


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
