"""Reports the metrics of a trained model directory on a split or a file.

Example:
    python -m trainers.evaluate --model_dir=runs/finetune --split=test
    python -m trainers.evaluate --model_dir=runs/finetune --input_file=my_reviews.csv
"""

from absl import flags

from trainers import flags as common

common.define_flags()
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split of the config's data to evaluate.")
flags.DEFINE_string("input_file", None, "Labelled CSV/TSV/JSONL file to evaluate instead of --split.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    from tfmodels.config import load_run_config
    config = load_run_config(common.FLAGS.model_dir, common.FLAGS.config, common.FLAGS.override)
    from tfmodels.tasks import evaluate  # after the config: loading TensorFlow takes 10 s or more
    evaluate.run(config, split=common.FLAGS.split, input_file=common.FLAGS.input_file)


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
