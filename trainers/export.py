"""Exports a trained model directory: a verified SavedModel for TF Serving, or a Hugging Face dir.

Example:
    python -m trainers.export --model_dir=runs/finetune --export_base=exports --model_name=sentiment
    python -m trainers.export --model_dir=runs/finetune --format=huggingface --export_base=hf \
        --model_name=sentiment   # writes hf/sentiment/ (config.json, model.safetensors, vocab.txt)
"""

from absl import flags

from trainers import flags as common

common.define_flags()
flags.DEFINE_string("export_base", None, "Serving base directory; writes <export_base>/<model_name>/<version>/.")
flags.DEFINE_string("model_name", None, "Model name under --export_base (defaults to the config's export.model_name).")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "huggingface"],
                  "saved_model: <export_base>/<model_name>/<version>/ for TF Serving; huggingface: a "
                  "transformers BERT directory <export_base>/<model_name>/ (BERT models only).")
flags.DEFINE_boolean("verify", True, "Reload the export in a fresh process and compare outputs with the trained model.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    from tfmodels.config import check_writable_dir, load_run_config
    overrides = list(common.FLAGS.override)
    if common.FLAGS.export_base:
        overrides.append(f"export.export_base={common.FLAGS.export_base}")
    if common.FLAGS.model_name:
        overrides.append(f"export.model_name={common.FLAGS.model_name}")
    overrides.append(f"export.verify={str(common.FLAGS.verify).lower()}")
    config = load_run_config(common.FLAGS.model_dir, common.FLAGS.config, overrides)
    if config.export.export_base:  # unset: the export task names the flag
        check_writable_dir(config.export.export_base, "export.export_base")
    from tfmodels.tasks import export  # after the config: loading TensorFlow takes 10 s or more
    export.run(config, format=common.FLAGS.format)


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
