"""Pretraining corpora: text files, globs, directories, TFDS text features and builtin:zh_corpus."""
import glob
import os

import numpy as np

from tfmodels.data import builtin, files, tfds_source
from tfmodels.data.errors import BadRecordReport, DataError

BUILTIN_CORPUS = "builtin:zh_corpus"
CORPUS_FORMS = (f"existing files, globs or directories, {tfds_source.TFDS_FORM}, "
                f"{BUILTIN_CORPUS}")


def _expand_paths(source):
    """Files of a path, glob or directory (recursive, hidden files left out), sorted."""
    if os.path.isdir(source):
        found = [os.path.join(root, name) for root, _, names in os.walk(source)
                 for name in names if not name.startswith(".")]
    else:
        found = glob.glob(source, recursive=True)
    if not found:
        raise DataError(source, None, "no file matches", CORPUS_FORMS)
    return sorted(path for path in found if os.path.isfile(path))


class _CorpusBuilder:
    """Collects lines into documents and parts; document ids stay contiguous."""

    def __init__(self):
        self.texts, self.document_ids, self.part_ids, self.part_names = [], [], [], []
        self._document = -1
        self._new_document = True

    def new_part(self, name):
        self.part_names.append(name)
        self.new_document()

    def new_document(self):
        self._new_document = True

    def add_line(self, text):
        if self._new_document:  # however many blank lines separate two documents
            self._document += 1
            self._new_document = False
        self.texts.append(text)
        self.document_ids.append(self._document)
        self.part_ids.append(len(self.part_names) - 1)

    def corpus(self, report):
        return builtin.Corpus(texts=self.texts,
                              document_ids=np.asarray(self.document_ids, np.int32),
                              part_ids=np.asarray(self.part_ids, np.int32),
                              part_names=self.part_names, report=report)


def _add_builtin(builder, seed):
    corpus = builtin.load_zh_corpus(seed)
    for name in corpus.part_names:
        builder.new_part(name)
        for text in corpus.texts_of(name):
            builder.new_document()
            builder.add_line(text)


def _add_tfds(builder, source, text_key, report):
    """Each example is a document; its text feature's non-blank lines are its lines."""
    examples, info = tfds_source.load_tfds(source, "train")
    files.check_columns(source, list(info.features.keys()), [text_key])
    builder.new_part(source)
    for example in examples:
        builder.new_document()
        for line in tfds_source.tfds_value_to_str(example[text_key]).splitlines():
            if line.strip():
                report.records_read += 1
                builder.add_line(line.strip())


def _add_file(builder, path, report):
    """One line a sentence; a blank line starts a new document."""
    builder.new_part(path)
    for _, line in files.text_lines(files.decode(files.read_bytes(path)), path, report):
        if line:
            builder.add_line(line)
        else:
            builder.new_document()


def read_corpus(sources, *, on_bad_record="error", text_key="text", seed=42):
    """Reads a pretraining corpus: one sentence/document per line, blank line = new document.

    Args:
        sources: str | list[str]. Files, globs, directories (all files below, sorted), a
            `tfds:` source (feature `text_key`; see tfmodels.data.tfds_source), or
            `builtin:zh_corpus`.
        on_bad_record: str. "error" (default) or "skip" (non-UTF-8 lines).
        text_key: str. TFDS text feature. Defaults to "text".
        seed: int. Split seed of builtin:zh_corpus's review part. Defaults to 42.

    Returns:
        builtin.Corpus with one part per file/dataset and `.report`.
    """
    sources = [sources] if isinstance(sources, str) else list(sources)
    report = BadRecordReport(on_bad_record)
    builder = _CorpusBuilder()
    for source in sources:
        if source == BUILTIN_CORPUS:
            _add_builtin(builder, seed)
        elif tfds_source.is_tfds_source(source):
            _add_tfds(builder, source, text_key, report)
        else:
            for path in dict.fromkeys(_expand_paths(source)):
                _add_file(builder, path, report)
    if not builder.texts:
        raise DataError(", ".join(sources), None, "corpus is empty (no non-blank lines)",
                        "at least one line of text")
    return builder.corpus(report)


__all__ = ["BUILTIN_CORPUS", "read_corpus"]
