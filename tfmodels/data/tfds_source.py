"""TFDS sources: the `tfds:` source grammar and reading prepared datasets.

Grammar (one reading only):

    tfds:<name>[/<config>][:<version>][:<split>]

* `<name>`: letters, digits and `_` (`imdb_reviews`); `/<config>` as TFDS writes it
  (`glue/sst2`, `wikipedia/20230601.en`);
* `<version>`: three dot-separated parts, each digits or `*` (`1.0.0`, `3.*.*`); the part after
  the name is a version exactly when it has that shape;
* `<split>`: everything after that, as `tfds.load(split=...)` takes it: `train`, `train[:10%]`,
  `test[-500:]`, `train[80%:]+test`, `train[:4shard]`; checked with TFDS's own split parser.
  Without a split the caller's default applies (train for `data.train`, validation and test
  for `data.validation` / `data.test`).

Examples: `tfds:imdb_reviews:train[:10%]`, `tfds:mnist:3.0.1:train[80%:]+test`,
`tfds:glue/sst2:2.*.*:validation`. Community namespaces (`huggingface:...`) are not supported.
Datasets are read from the local TFDS data dir only (`download=False`).
"""
import dataclasses
import re

import numpy as np

from tfmodels.data.errors import DataError

TFDS_PREFIX = "tfds:"
TFDS_FORM = "tfds:<name>[/<config>][:<version>][:<split>], e.g. tfds:imdb_reviews:train[:10%]"
_SPLIT_EXAMPLES = "train, test[:10%], train[80%:]+test (tensorflow.org/datasets/splits)"
_VERSION_PART = r"(?:\d+|\*)"
_TFDS_RE = re.compile(rf"""
    (?P<name>[A-Za-z0-9_]+(?:/[\w.+-]+)?)
    (?::(?P<version>{_VERSION_PART}\.{_VERSION_PART}\.{_VERSION_PART}))?
    (?::(?P<split>[^:\s].*))?
    """, re.X)


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A parsed `tfds:` source.

    Args:
        name: str. Dataset name with its config, e.g. "glue/sst2".
        version: str | None. e.g. "1.0.0" or "3.*.*".
        split: str | None. TFDS split expression, e.g. "train[:10%]+test".
    """

    name: str
    version: str | None = None
    split: str | None = None

    @property
    def dataset(self):
        """The name as `tfds.load` takes it: name[/config][:version]."""
        return f"{self.name}:{self.version}" if self.version else self.name


def is_tfds_source(source):
    """Whether a source string names a TFDS dataset (starts with "tfds:")."""
    return str(source).startswith(TFDS_PREFIX)


def parse_tfds_source(source):
    """Parses `tfds:<name>[/<config>][:<version>][:<split>]` (see the module docstring).

    Args:
        source: str. The source string.

    Returns:
        TfdsSource.

    Raises:
        DataError: the string does not follow the grammar.
    """
    source = str(source)
    match = _TFDS_RE.fullmatch(source[len(TFDS_PREFIX):]) if is_tfds_source(source) else None
    if match is None:
        raise DataError(f"source {source!r}", None, "is not a valid TFDS source", TFDS_FORM)
    return TfdsSource(match["name"], match["version"], match["split"] and match["split"].strip())


def check_split(source, split):
    """Raises a DataError unless `tfds.load` can parse the split expression.

    Args:
        source: str. The source string, for the message.
        split: str. e.g. "train[:10%]+test".
    """
    import tensorflow_datasets as tfds
    try:
        tfds.core.ReadInstruction.from_spec(split)
    except (ValueError, NotImplementedError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise DataError(f"source {source!r}", None,
                        f"split {split!r} is not a TFDS split ({reason})", _SPLIT_EXAMPLES) from None


def load_tfds(source, default_split="train"):
    """Loads a prepared TFDS dataset as numpy examples.

    Args:
        source: str. `tfds:` source string.
        default_split: str. Split when the source names none. Defaults to "train".

    Returns:
        (iterable of feature dicts of numpy values, tfds.core.DatasetInfo).
    """
    import tensorflow_datasets as tfds
    parsed = parse_tfds_source(source)
    split = parsed.split or default_split
    check_split(source, split)
    try:
        dataset, info = tfds.load(parsed.dataset, split=split, with_info=True, download=False)
    except (ValueError, AssertionError, NotImplementedError, OSError) as error:
        lines = str(error).strip().splitlines()
        raise DataError(f"source {source!r}", None,
                        f"TFDS cannot load {parsed.dataset!r} split {split!r} "
                        f"({lines[0] if lines else type(error).__name__})",
                        "a dataset prepared in the local TFDS data dir, " + TFDS_FORM) from None
    return tfds.as_numpy(dataset), info


def tfds_value_to_str(value, feature=None):
    """A TFDS feature value as text: bytes decoded, class ids as their names, numbers as str.

    Args:
        value: numpy value or bytes. One feature of one example.
        feature: tfds feature | None. Its spec; a ClassLabel maps ids to names.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    names = getattr(feature, "names", None)
    if names is not None and np.ndim(value) == 0:
        return names[int(value)]
    return str(value.item() if hasattr(value, "item") else value)


__all__ = ["TFDS_FORM", "TFDS_PREFIX", "TfdsSource", "check_split", "is_tfds_source",
           "load_tfds", "parse_tfds_source", "tfds_value_to_str"]
