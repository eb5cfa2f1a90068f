"""The whole story: vocabulary, pretraining, fine-tuning, a random-init comparison, evaluation, export, prediction.

Example:
    python -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/demo
    # the paired-seed study: (a) and (b) fine-tuned with 3 seeds after one shared pretraining
    python -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/study --seeds=3
    # the same with one pretraining per seed, so the spread of (a) includes the pretraining run's
    python -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/study --seeds=3 \
        --pretraining=per_seed
    # a study that changes only pretraining: the random-init (and LSTM) runs of runs/study are reused
    python -m trainers.pipeline --config=configs/demo_zh_sentiment.yaml --model_dir=runs/mask40 --seeds=3 \
        --pretraining=per_seed --override=data.mask_rate=0.4 --reuse_from=runs/study
"""

from absl import flags

from tfmodels import choices
from trainers import flags as common

common.define_flags()
flags.DEFINE_integer("seeds", None, "Fine-tuning seeds of the paired study (study.seeds): seed, seed+1, ...",
                     lower_bound=1)
flags.DEFINE_enum("pretraining", None, choices.STUDY_PRETRAININGS,
                  "The study's pretraining (study.pretraining): shared by every seed, or one per seed.")
flags.DEFINE_string("reuse_from", None, "An earlier pipeline run (study.reuse_from): its pretraining, random-init "
                    "and LSTM stages are copied in where their settings match what the stage reads.")


def main(argv):
    del argv
    config = common.resolve_config("pipeline", **{"study.seeds": flags.FLAGS.seeds,  # before TensorFlow loads
                                      "study.pretraining": flags.FLAGS.pretraining,
                                      "study.reuse_from": flags.FLAGS.reuse_from})
    from tfmodels.tasks import pipeline
    pipeline.run(config)


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
