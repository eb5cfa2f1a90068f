"""The whole story: vocabulary, pretraining, fine-tuning, a random-init comparison, evaluation, export, prediction.

Example:
    python -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/demo
"""

from trainers import flags as common

common.define_flags()


def main(argv):
    del argv
    from tfmodels.tasks import pipeline
    pipeline.run(common.resolve_config())


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
