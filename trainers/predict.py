"""Predicts with an exported SavedModel: an export base, a model directory under it or a version.

Reads --text (repeatable), --input_file (a CSV/TSV/.tab/JSONL file read like training data, the
text in --column; any other extension one text per line) or stdin, and writes one JSON line per
input with the label, the probabilities and the input.

Example:
    python -m trainers.predict --model=exports/sentiment --text=这是一部非常好的电影！
"""

import sys

from absl import flags

from trainers import flags as common

common.define_flags()
flags.DEFINE_string("model", None, "Export base, model directory under it, or a version directory.")
flags.DEFINE_multi_string("text", [], "A text to classify; repeatable.")
flags.DEFINE_string("input_file", None, "A .csv/.tsv/.tab/.jsonl/.ndjson/.json file (text in "
                    "--column), or any other file with one text per line.")
flags.DEFINE_string("column", None, "Text column of a table --input_file (default text; 'a,b' "
                    "for sentence pairs).")
flags.DEFINE_integer("batch_size", 64, "Texts per batch.")
flags.DEFINE_string("output", None, "Write JSON lines here instead of stdout.")
flags.mark_flag_as_required("model")


def main(argv):
    del argv
    from tfmodels.export import run_predict
    F = common.FLAGS
    run_predict(F.model, texts=F.text or None, input_file=F.input_file, column=F.column,
                output=F.output, batch_size=F.batch_size, stdin=sys.stdin)


def console_main():
    common.run_main(main)


if __name__ == "__main__":
    console_main()
