"""The `tfds:` source grammar, and TFDS sources of every loader under tfds.testing.mock_data."""
import re

import pytest

from tfmodels.data import DataError, load_feature_splits, load_text_classification, read_corpus
from tfmodels.data.tfds_source import TfdsSource, parse_tfds_source

tfds = pytest.importorskip("tensorflow_datasets")

GRAMMAR = [
    ("tfds:imdb_reviews", TfdsSource("imdb_reviews")),
    ("tfds:imdb_reviews:train[:10%]", TfdsSource("imdb_reviews", None, "train[:10%]")),
    ("tfds:mnist:train[80%:]+test", TfdsSource("mnist", None, "train[80%:]+test")),
    ("tfds:mnist:test[-500:]", TfdsSource("mnist", None, "test[-500:]")),
    ("tfds:mnist:3.0.1", TfdsSource("mnist", "3.0.1")),
    ("tfds:mnist:3.*.*:train[:4shard]", TfdsSource("mnist", "3.*.*", "train[:4shard]")),
    ("tfds:glue/sst2:2.0.0:validation[:50%] + test",
     TfdsSource("glue/sst2", "2.0.0", "validation[:50%] + test")),
    ("tfds:wikipedia/20230601.en:train", TfdsSource("wikipedia/20230601.en", None, "train")),
]


@pytest.mark.parametrize("source,expected", GRAMMAR, ids=[g[0] for g in GRAMMAR])
def test_grammar(source, expected):
    assert parse_tfds_source(source) == expected


def test_dataset_name_as_tfds_writes_it():
    assert parse_tfds_source("tfds:glue/sst2:2.0.0:train").dataset == "glue/sst2:2.0.0"
    assert parse_tfds_source("tfds:mnist:train").dataset == "mnist"


@pytest.mark.parametrize("source", ["tfds:", "tfds::train", "tfds:mnist:", "tfds:mnist::train",
                                    "tfds:mn ist", "tfds:glue/:train"])
def test_malformed_source_is_one_line_naming_it_and_the_grammar(source):
    with pytest.raises(DataError) as info:
        parse_tfds_source(source)
    message = str(info.value)
    assert message.startswith(f"source {source!r}: is not a valid TFDS source (allowed: "
                              "tfds:<name>[/<config>][:<version>][:<split>]")
    assert "\n" not in message


class _LoadSpy:
    """Records the name and split every tfds.load call receives."""

    def __init__(self, monkeypatch):
        self.calls = []
        self._load = tfds.load
        monkeypatch.setattr(tfds, "load", self)

    def __call__(self, name, *, split, **kwargs):
        self.calls.append((name, split))
        return self._load(name, split=split, **kwargs)


def test_text_classification_with_sliced_split_and_union(monkeypatch):
    spy = _LoadSpy(monkeypatch)
    with tfds.testing.mock_data(num_examples=6):
        splits = load_text_classification("tfds:imdb_reviews:train[:10%]", validation_fraction=0,
                                           test="tfds:imdb_reviews:1.0.0:train[90%:]+test")
    assert spy.calls == [("imdb_reviews", "train[:10%]"), ("imdb_reviews:1.0.0", "train[90%:]+test")]
    assert len(splits.train) == 6 and len(splits.test) == 6
    assert set(splits.label_names) <= {"neg", "pos"}


def test_corpus_and_features_with_versioned_names(monkeypatch):
    spy = _LoadSpy(monkeypatch)
    with tfds.testing.mock_data(num_examples=5):
        corpus = read_corpus("tfds:imdb_reviews:1.0.0:unsupervised[:1%]")
        splits = load_feature_splits("tfds:mnist:3.*.*:train[:50%]", validation_fraction=0)
        whole = load_feature_splits("tfds:mnist:3.0.1", validation_fraction=0)
    assert len(corpus.texts) >= 5 and corpus.part_names == ["tfds:imdb_reviews:1.0.0:unsupervised[:1%]"]
    assert splits.train.features.shape == (5, 784) and splits.test is None
    assert len(whole.test) == 5  # no split named: train, and test as the test split
    assert spy.calls == [("imdb_reviews:1.0.0", "unsupervised[:1%]"), ("mnist:3.*.*", "train[:50%]"),
                         ("mnist:3.0.1", "train"), ("mnist:3.0.1", "test")]


@pytest.mark.parametrize("split", ["train[:10%", "train[1:2:3]", "train[5]", "all[:5%]"])
def test_malformed_split_is_checked_before_loading(split):
    source = f"tfds:imdb_reviews:{split}"
    with tfds.testing.mock_data(num_examples=3):  # mock data would accept any split
        with pytest.raises(DataError, match=rf"^source '{re.escape(source)}': split '.*' is not "
                                            r"a TFDS split \(.*\) \(allowed: train, test\[:10%\]"):
            load_text_classification(source)


def test_dataset_that_cannot_be_loaded_is_one_line():
    with pytest.raises(DataError, match=r"source 'tfds:no_such_dataset_x:train': TFDS cannot load "
                                        r"'no_such_dataset_x' split 'train' \(Dataset no_such_"
                                        r"dataset_x not found.\) \(allowed: a dataset prepared"):
        read_corpus("tfds:no_such_dataset_x:train")
