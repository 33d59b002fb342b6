"""CTCTokenizer (chapter 9) against transformers' Wav2Vec2CTCTokenizer on the same files, and its errors."""
import json
import random
import warnings

import numpy as np
import pytest
import torch

from w2vc import CTCTokenizer, Wav2Vec2CTCTokenizer

transformers = pytest.importorskip("transformers")

# The published English recognisers' vocabulary: four specials, the word delimiter, letters by frequency.
ENGLISH = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONIHSRDLUMWCFGYPBVKXJQZ'")

TEXTS = [
    "HELLO WORLD",
    "A A",  # the same letter on both sides of a word boundary
    "TOO  OLD",  # repeated letters, two spaces
    "  LEADING AND TRAILING ",
    "DON'T STOP",
    "HÉLLO, WORLD!",  # characters outside the vocabulary
    "TAB\tAND\nNEWLINE",
    "A <s> B",  # a whole special token, with spaces around it
    "A<unk>B<pad>C</s>",
    "A|B",
    "hello world",  # lower case against an upper-case vocabulary
    "ß ﬁ İ",  # characters whose upper case is longer, or unknown
    "",
    " ",
]


def _write_vocab(folder, symbols):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}), encoding="utf-8")
    return folder


def _pair(tmp_path, symbols=ENGLISH, **kwargs):
    folder = _write_vocab(tmp_path / "tok", symbols)
    theirs = transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), **kwargs)
    ours = CTCTokenizer.from_pretrained(folder, unknown="ignore", **kwargs)
    return ours, theirs


@pytest.mark.parametrize("do_lower_case", [False, True])
def test_encode_matches_transformers(tmp_path, do_lower_case):
    ours, theirs = _pair(tmp_path, do_lower_case=do_lower_case)
    for text in TEXTS:
        assert ours.encode(text) == theirs(text).input_ids, text
    assert ours.batch_encode(TEXTS) == [theirs(t).input_ids for t in TEXTS]
    assert ours(TEXTS[0]) == theirs(TEXTS[0]).input_ids and ours(TEXTS[:2]) == ours.batch_encode(TEXTS[:2])


def _random_frames(rng, vocab_size, length):
    """Frame ids with many blanks, runs, delimiters, specials and an id outside the vocabulary."""
    choices = [0] * 6 + [4] * 3 + list(range(1, vocab_size)) + [vocab_size + 7]
    out = []
    while len(out) < length:
        out += [rng.choice(choices)] * rng.choice([1, 1, 2, 3])
    return out[:length]


@pytest.mark.parametrize("do_lower_case", [False, True])
@pytest.mark.parametrize("clean_up", [False, True])
def test_decode_matches_transformers(tmp_path, do_lower_case, clean_up):
    ours, theirs = _pair(tmp_path, do_lower_case=do_lower_case, clean_up_tokenization_spaces=clean_up)
    rng = random.Random(0)
    batch = [_random_frames(rng, len(ENGLISH), rng.randint(0, 40)) for _ in range(300)]
    batch += [[7, 7, 4, 7], [7, 0, 7, 4, 4, 0, 4, 7], [4, 0, 4], [4, 4, 5, 4], [0, 0], [], [5] * 5]
    batch += [theirs(t).input_ids for t in TEXTS]
    for ids in batch:
        for group in (True, False):
            assert ours.decode(ids, group_tokens=group) == theirs.decode(ids, group_tokens=group), (ids, group)
    assert ours.batch_decode(batch) == theirs.batch_decode(batch)


def test_repeated_letters_across_a_word_boundary(tmp_path):
    ours, theirs = _pair(tmp_path)
    v = ours.vocab
    # "A A": the model may emit A A | | A: the delimiter keeps the two words apart without a blank
    frames = [v["A"], v["A"], v["|"], v["|"], v["A"]]
    assert ours.decode(frames) == theirs.decode(frames) == "A A"
    # "TOO": the two O need a blank between them; without it they merge
    assert ours.decode([v["T"], v["O"], 0, v["O"]]) == "TOO"
    assert ours.decode([v["T"], v["O"], v["O"]]) == "TO"
    labels = ours.encode("TOO  OLD")
    assert ours.decode(labels, group_tokens=False) == theirs.decode(labels, group_tokens=False) == "TOO  OLD"


def test_decode_accepts_tensors_arrays_and_ints(tmp_path):
    ours, theirs = _pair(tmp_path)
    ids = [11, 5, 15, 0, 15, 8]
    assert ours.decode(torch.tensor(ids)) == ours.decode(np.array(ids)) == ours.decode(ids) == theirs.decode(ids)
    assert ours.decode(7) == theirs.decode(7) == "A"
    batch = torch.tensor([ids, ids[::-1]])
    assert ours.batch_decode(batch) == ours.batch_decode(batch.numpy()) == theirs.batch_decode(batch)


def test_batch_decode_lengths_cut_padding(tmp_path):
    ours, _ = _pair(tmp_path)
    v = ours.vocab
    batch = torch.tensor([[v["H"], v["I"], v["X"]], [v["O"], v["K"], v["X"]]])
    assert ours.batch_decode(batch, lengths=torch.tensor([2, 3])) == ["HI", "OKX"]


def test_skip_special_tokens_drops_them_after_merging(tmp_path):
    ours, _ = _pair(tmp_path)
    v = ours.vocab
    ids = [v["<s>"], v["L"], 0, v["L"], v["<unk>"], v["</s>"]]
    assert ours.decode(ids) == "<s>LL<unk></s>"
    assert ours.decode(ids, skip_special_tokens=True) == "LL"  # the blank still separates the two L


def test_files_round_trip_both_ways(tmp_path):
    ours, theirs = _pair(tmp_path, do_lower_case=True)
    # transformers writes, we read
    theirs.save_pretrained(tmp_path / "hf")
    mine = CTCTokenizer.from_pretrained(tmp_path / "hf")
    assert mine.vocab == ours.vocab and mine.do_lower_case and mine.pad_token_id == 0
    # we write, transformers reads (and we read back)
    ours.save_pretrained(tmp_path / "w2vc")
    assert {p.name for p in (tmp_path / "w2vc").iterdir()} == {
        "vocab.json", "tokenizer_config.json", "special_tokens_map.json"}
    back = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "w2vc"))
    assert isinstance(back, transformers.Wav2Vec2CTCTokenizer) and back.do_lower_case
    for text in TEXTS:
        assert back(text).input_ids == ours.encode(text)
    again = CTCTokenizer.from_pretrained(tmp_path / "w2vc")
    assert again.vocab == ours.vocab and again.do_lower_case is True


def test_lowercase_vocabulary_built_from_texts_matches_transformers(tmp_path):
    texts = ["turn the light on", "three two one", "go left"]
    ours = CTCTokenizer.from_texts(texts)
    assert ours.vocab["<pad>"] == 0 and ours.vocab["|"] == 4 and "t" in ours.vocab and " " not in ours.vocab
    ours.save_pretrained(tmp_path)
    theirs = transformers.Wav2Vec2CTCTokenizer.from_pretrained(str(tmp_path))
    for text in texts + ["hello there"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert ours.encode(text) == theirs(text).input_ids
    upper = CTCTokenizer.from_texts(texts, do_lower_case=True)
    assert "T" in upper.vocab and "t" not in upper.vocab
    assert upper.decode(upper.encode("go left"), group_tokens=False) == "go left"


def test_special_tokens_written_as_dicts_and_a_custom_blank(tmp_path):
    folder = _write_vocab(tmp_path, ["|", "A", "B", "[UNK]", "[PAD]"])
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "pad_token": "<overridden>", "unk_token": "[UNK]", "bos_token": None,
        "eos_token": None, "word_delimiter_token": "|"}))
    # special_tokens_map.json wins over tokenizer_config.json, as in transformers
    (tmp_path / "special_tokens_map.json").write_text(json.dumps(
        {"pad_token": {"content": "[PAD]", "lstrip": False, "__type": "AddedToken"}}))
    tok = CTCTokenizer.from_pretrained(folder)
    assert tok.pad_token == "[PAD]" and tok.pad_token_id == tok.blank_id == 4 and tok.unk_token == "[UNK]"
    assert tok.decode([1, 4, 1, 0, 0, 2, 3]) == "AA B[UNK]"
    theirs = transformers.Wav2Vec2CTCTokenizer.from_pretrained(str(folder))
    assert tok.decode([1, 4, 1, 0, 0, 2, 3]) == theirs.decode([1, 4, 1, 0, 0, 2, 3])


def test_nested_multilingual_vocabulary_needs_target_lang(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({
        "eng": {"<pad>": 0, "<unk>": 1, "|": 2, "a": 3}, "fra": {"<pad>": 0, "<unk>": 1, "|": 2, "é": 3}}))
    assert CTCTokenizer.from_pretrained(tmp_path, target_lang="fra").decode([3, 2, 3]) == "é é"
    with pytest.raises(ValueError, match=r"target_lang: .* one vocabulary per language; expected one of \['eng', 'fra'\]"):
        CTCTokenizer.from_pretrained(tmp_path)


def test_unknown_characters_warn_by_default_and_can_raise():
    tok = CTCTokenizer.from_texts(["go left"])
    with pytest.warns(UserWarning, match=r"characters outside the vocabulary: \['!', 'x'\]; they become '<unk>'"):
        ids = tok.encode("go x!")
    assert ids.count(tok.unk_token_id) == 2
    strict = CTCTokenizer(tok.vocab, unknown="error")
    with pytest.raises(ValueError, match=r"outside the vocabulary: \['X'\]"):
        strict.encode("go X")
    quiet = CTCTokenizer(tok.vocab, unknown="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert quiet.encode("x") == [tok.unk_token_id]


def test_unknown_character_without_unk_token_raises():
    tok = CTCTokenizer({"<pad>": 0, "|": 1, "a": 2})
    with pytest.raises(ValueError, match=r"unk_token '<unk>' is not in the vocabulary either"):
        tok.encode("ab")


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"vocab: expected a non-empty dict"):
        CTCTokenizer({})
    with pytest.raises(ValueError, match=r"vocab: expected distinct ids, got \{1: \['a', 'b'\]\}"):
        CTCTokenizer({"<pad>": 0, "a": 1, "b": 1})
    with pytest.raises(ValueError, match=r"pad_token: '<pad>' is not in the vocabulary, but CTC needs it as its blank"):
        CTCTokenizer({"a": 0, "b": 1})
    with pytest.raises(ValueError, match=r"unknown: expected 'warn', 'error' or 'ignore', got 'drop'"):
        CTCTokenizer({"<pad>": 0}, unknown="drop")
    with pytest.raises(TypeError, match=r"texts: expected an iterable of transcripts, got a single string"):
        CTCTokenizer.from_texts("hello")


def test_call_errors():
    tok = CTCTokenizer.from_texts(["ab"])
    with pytest.raises(TypeError, match=r"text: expected a string, got list; use batch_encode"):
        tok.tokenize(["ab"])
    with pytest.raises(TypeError, match=r"texts: expected a list of strings, got one string; use encode"):
        tok.batch_encode("ab")
    with pytest.raises(ValueError, match=r"sequences: expected shape \(B, T\), got \(3,\); use decode"):
        tok.batch_decode(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"lengths: expected 2 lengths \(one per sequence\), got 1"):
        tok.batch_decode([[1], [2]], lengths=[1])


def test_missing_vocabulary_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected a vocabulary file .*vocab.json, but there is none"):
        CTCTokenizer.from_pretrained(tmp_path)


def test_transformers_name_is_an_alias():
    assert Wav2Vec2CTCTokenizer is CTCTokenizer
    tok = CTCTokenizer.from_texts(["ab"])
    assert len(tok) == tok.vocab_size == 7 and "vocab_size=7" in repr(tok)
