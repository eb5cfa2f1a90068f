"""WordPiece vocabulary build, save/load round trip and validation."""
import pytest

from tfmodels.data import vocab as vocab_lib

TEXTS = ["我喜欢这本书，很好看", "这本书不好看 bad book", "质量不错 good quality",
         "hello world 你好世界", "booking books bookish"] * 20


def test_build_reserved_first_cjk_single_chars(tmp_path):
    path = tmp_path / "vocab.txt"
    tokens = vocab_lib.build_wordpiece_vocab(TEXTS, 60, output_path=str(path))
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(tokens) <= 60 and len(set(tokens)) == len(tokens)
    assert "书" in tokens and "##书" not in tokens
    assert all(len(t) == 1 for t in tokens if vocab_lib.is_cjk_char(t[0]))
    assert "book" in tokens or "##s" in tokens
    assert vocab_lib.load_vocab(str(path)) == tokens
    assert vocab_lib.load_vocab(str(tmp_path)) == tokens
    assert path.read_text(encoding="utf-8").splitlines() == tokens


def test_unknown_token_rate():
    from tfmodels.data.pipelines import make_tokenizer
    tokens = vocab_lib.build_wordpiece_vocab(TEXTS, 60)
    tokenizer = make_tokenizer(tokens)
    assert vocab_lib.unknown_token_rate(["我喜欢这本书"], tokenizer) == 0.0
    assert vocab_lib.unknown_token_rate(["龘"], tokenizer) == 1.0


def test_load_vocab_missing_reserved_names_file_and_tokens(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.txt: reserved tokens \[SEP\] \[MASK\] missing"):
        vocab_lib.load_vocab(str(path))


def test_load_vocab_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        vocab_lib.load_vocab(str(tmp_path / "nope.txt"))
    path = tmp_path / "dup.txt"
    path.write_text("\n".join(list(vocab_lib.RESERVED_TOKENS) + ["a", "a"]) + "\n")
    with pytest.raises(ValueError, match="duplicate tokens 'a' at line 7"):
        vocab_lib.load_vocab(str(path))
    with pytest.raises(ValueError, match="vocab_size=5 too small"):
        vocab_lib.build_wordpiece_vocab(TEXTS, 5)
    with pytest.raises(ValueError, match="texts is empty"):
        vocab_lib.build_wordpiece_vocab([], 50)


def test_accepts_existing_hf_style_vocab_with_other_order(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[unused1]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n的\n", encoding="utf-8")
    assert vocab_lib.load_vocab(str(path))[6] == "的"
