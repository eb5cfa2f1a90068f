"""Masked-LM pretraining of a BERT encoder; writes the encoder and its vocab.txt for finetune.

Example:
    python -m trainers.pretrain --config=configs/bert_pretrain_zh.yaml --model_dir=runs/pretrain
"""

from trainers import flags as common

common.define_flags()


def main(argv):
    del argv
    config = common.resolve_config("pretrain")  # before the task's import loads TensorFlow: bad configs fail fast
    from tfmodels.tasks import pretrain
    pretrain.run(config)


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
