"""The whole story: vocabulary, pretraining, fine-tuning, a random-init comparison, evaluation, export, prediction.

Example:
    python -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/demo
    # the paired-seed study: (a) and (b) fine-tuned with 3 seeds after one shared pretraining
    python -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/study --seeds=3
    # the same with one pretraining per seed, so the spread of (a) includes the pretraining run's
    python -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/study --seeds=3 \
        --pretraining=per_seed
"""

from absl import flags

from tfmodels import choices
from trainers import flags as common

common.define_flags()
flags.DEFINE_integer("seeds", None, "Fine-tuning seeds of the paired study (study.seeds): seed, seed+1, ...",
                     lower_bound=1)
flags.DEFINE_enum("pretraining", None, choices.STUDY_PRETRAININGS,
                  "The study's pretraining (study.pretraining): shared by every seed, or one per seed.")


def main(argv):
    del argv
    config = common.resolve_config(**{"study.seeds": flags.FLAGS.seeds,  # before TensorFlow loads
                                      "study.pretraining": flags.FLAGS.pretraining})
    from tfmodels.tasks import pipeline
    pipeline.run(config)


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
