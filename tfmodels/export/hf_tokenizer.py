"""The Hugging Face `tokenizer.json` that splits text as keras-hub's `BertTokenizer` does.

transformers' own `BertTokenizer` lowercases with `str.lower` and keeps full-width characters,
while keras-hub's (the tokenizer this package trains with) splits first and then folds each piece
with Unicode NFKC case folding: "，" becomes ",", "！" "!", "ＡＢＣ" "abc". Loaded from a bare
`vocab.txt`, transformers would read most Chinese punctuation as [UNK]. The `tokenizer.json` written
here reproduces keras-hub's result in the `tokenizers` pipeline (normalize, then split, then
WordPiece):

- normalizer: control and format characters become spaces (keras-hub splits on them), then each
  character whose folding changes how it splits is replaced by a private-use stand-in (below), then
  NFKC and lowercasing (with `lowercase`), then BERT's spacing around CJK characters;
- pre-tokenizer: BERT's split on whitespace and punctuation, and stand-ins of punctuation isolated;
- model: WordPiece over the vocabulary, plus entries that give a stand-in the id keras-hub gives its
  folding: the folding itself, its "##" form, and for a one-character folding every token that
  holds it ("~~", "1~2");
- decoder: stand-ins back to their foldings, then WordPiece's.

A stand-in is needed where splitting after folding differs from splitting before it: a punctuation
mark that folds to several marks ("…" to "...", one token for keras-hub), and a character that folds
to punctuation or a space without being punctuation itself ("～" to "~", kept in one word with its
neighbours; the ideographic space, which keras-hub reads as [UNK]). Remaining differences: special
tokens written inside the text ("[CLS]"), which `tokenizers` matches and keras-hub splits; a
character whose folding is several characters that are not one vocabulary token ("‥", "⑴"); and the
few characters whose case folding differs from lowercasing ("ß").
"""
from __future__ import annotations

import functools
import sys
import unicodedata

from tfmodels.data.vocab import CLS_TOKEN, RESERVED_TOKENS, SEP_TOKEN, case_folded

# Texts an export's verification tokenizes both ways: one per rule of this module, plus plain text.
PROBE_TEXTS = ("很好，不错！", "房间干净。服务周到：推荐（真的）", "ＡＢＣ１２３ abc Good，Ｇｏｏｄ",
               "一整晚在呜呜呜……等了好久…", "12月4日～7日 好～～～ ～", "价格＋运费＜100", "偏\u3000打车 a\u3000b",
               "x\u200by tab\there\nnew", "Ça va? naïve", "😀👍 ♥", "USB３.０接口", "“引号”《书名》【括号】", "")
_PRIVATE_USE = 0xF0000  # plane 15: private use, never in a vocabulary built from text
_ASCII_PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _is_punctuation(char: str) -> bool:
    """keras-hub's (and BERT's) punctuation: non-alphanumeric ASCII symbols and Unicode class P."""
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def _is_space(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Zs"


def _splits_on(char: str) -> bool:
    """Whether BERT's pre-tokenizer splits at `char` (punctuation or space)."""
    return _is_punctuation(char) or _is_space(char)


def _folded(char: str, lowercase: bool) -> str:
    return case_folded(char) if lowercase else char


def _splits_differently(char: str, lowercase: bool) -> bool:
    """Whether folding `char` before splitting (tokenizers) gives other pieces than after (keras-hub)."""
    if char in " \t\n\r\f\v":
        return False
    folded = _folded(char, lowercase)
    if _is_punctuation(char):
        return len(folded) > 1 and any(map(_splits_on, folded))
    return _is_space(char) or (folded != char and any(map(_splits_on, folded)))


@functools.lru_cache(maxsize=2)
def characters_to_stand_in(lowercase: bool) -> tuple[str, ...]:
    """The characters that need a private-use stand-in (see the module docstring), in code-point order.

    Args:
        lowercase: bool. Whether the tokenizer folds case (keras-hub's `lowercase`).
    """
    chars = (chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF)
    return tuple(c for c in chars if unicodedata.category(c) not in ("Cc", "Cf", "Cn", "Cs", "Co")
                 and _splits_differently(c, lowercase))


def tokenizer_json(vocabulary: list[str], lowercase: bool) -> dict:
    """The `tokenizer.json` content for `vocabulary` (see the module docstring).

    Args:
        vocabulary: list[str]. The WordPiece vocabulary, id order; holds the special tokens.
        lowercase: bool. keras-hub's `lowercase` setting the model was trained with.

    Returns:
        dict. Serialize with `json.dump(..., ensure_ascii=False)`.
    """
    ids = {token: i for i, token in enumerate(vocabulary)}
    foldings = _foldings(lowercase)
    stand_ins = _stand_ins(foldings)
    normalizers = [{"type": "Replace", "pattern": {"Regex": r"[\p{Cc}\p{Cf}]"}, "content": " "}]
    normalizers += [{"type": "Replace", "pattern": {"String": char}, "content": stand_ins[folded]}
                    for char, folded in foldings]
    if lowercase:
        normalizers += [{"type": "NFKC"}, {"type": "Lowercase"}]
    normalizers.append({"type": "BertNormalizer", "clean_text": False, "handle_chinese_chars": True,
                        "strip_accents": False, "lowercase": False})
    pre_tokenizers = [{"type": "BertPreTokenizer"}]
    isolated = sorted({stand_ins[folded] for char, folded in foldings if _is_punctuation(char)})
    if isolated:
        pre_tokenizers.append({"type": "Split", "pattern": {"Regex": "[" + "".join(isolated) + "]"},
                               "behavior": "Isolated", "invert": False})
    back = [{"type": "Replace", "pattern": {"String": stand_in}, "content": folded}
            for folded, stand_in in stand_ins.items()]
    cls, sep = ids[CLS_TOKEN], ids[SEP_TOKEN]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": ids[token], "content": token, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True} for token in RESERVED_TOKENS],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": pre_tokenizers},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [_special("[CLS]", 0), _sequence("A", 0), _special("[SEP]", 0)],
            "pair": [_special("[CLS]", 0), _sequence("A", 0), _special("[SEP]", 0), _sequence("B", 1),
                     _special("[SEP]", 1)],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [cls], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "Sequence",
                    "decoders": [*back, {"type": "WordPiece", "prefix": "##", "cleanup": False}]},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100,
                  "vocab": {**ids, **_stand_in_vocabulary(ids, stand_ins)}},
    }


def _foldings(lowercase: bool) -> list[tuple[str, str]]:
    """(character, its folding) for each character that needs a stand-in."""
    return [(char, _folded(char, lowercase)) for char in characters_to_stand_in(lowercase)]


def _stand_ins(foldings: list[tuple[str, str]]) -> dict[str, str]:
    """{folding: its private-use stand-in}: one stand-in per distinct folding of `_foldings`."""
    distinct = sorted({folded for _, folded in foldings})
    return {folded: chr(_PRIVATE_USE + i) for i, folded in enumerate(distinct)}


def _stand_in_vocabulary(ids: dict[str, int], stand_ins: dict[str, str]) -> dict[str, int]:
    """Vocabulary entries that give a stand-in the id keras-hub gives its folding.

    A folding that is a token ("..." for "…") maps whole, with its "##" form. A one-character folding
    ("~" for "～") is also replaced inside every token holding it ("~~", "##~7"), because keras-hub
    keeps such a character in one word with its neighbours, where the ASCII character would have
    been split off.
    """
    entries = {}
    singles = {folded: stand_in for folded, stand_in in stand_ins.items() if len(folded) == 1}
    for token, token_id in ids.items():
        prefix, body = ("##", token[2:]) if token.startswith("##") else ("", token)
        if body in stand_ins:
            entries[prefix + stand_ins[body]] = token_id
        if len(body) > 1 and any(char in singles for char in body):
            entries.setdefault(prefix + "".join(singles.get(char, char) for char in body), token_id)
    return {key: value for key, value in entries.items() if key not in ids}


def _special(token: str, type_id: int) -> dict:
    return {"SpecialToken": {"id": token, "type_id": type_id}}


def _sequence(name: str, type_id: int) -> dict:
    return {"Sequence": {"id": name, "type_id": type_id}}
