"""The tokenizer builder on a tiny vocabulary: XLM-R's pipeline (nmt_nfkc, metaspace, unigram
Viterbi, <s> A </s>) and a folder that AutoTokenizer loads as it was built."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsf.real.tokenizer import build_tokenizer, save_tokenizer

PIECES = [
    "<s>",
    "<pad>",
    "</s>",
    "<unk>",
    "▁hello",
    "▁world",
    "▁",
    "h",
    "e",
    "l",
    "o",
    "▁he",
    "llo",
    "<mask>",
]
SCORES = [0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -3.0, -4.0, -4.0, -4.0, -4.0, -2.0, -2.5, 0.0]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(PIECES, SCORES)


def _pieces(tok, text: str) -> list[str]:
    return tok.encode(text).tokens


def test_unigram_picks_the_best_segmentation_and_frames_it(tok):
    assert _pieces(tok, "hello world") == ["<s>", "▁hello", "▁world", "</s>"]
    # ▁he + llo (-4.5) loses to ▁hello (-1.0); "hel" alone has no whole-word piece
    assert _pieces(tok, "hel") == ["<s>", "▁he", "l", "</s>"]


def test_nmt_nfkc_normalises_width_spaces_and_control_characters(tok):
    assert _pieces(tok, "ｈｅｌｌｏ\u3000  world\x07") == ["<s>", "▁hello", "▁world", "</s>"]


def test_unknown_characters_become_unk(tok):
    ids = tok.encode("hello 猫").ids
    assert ids[:2] == [0, 4] and 3 in ids and ids[-1] == 2


def test_pairs_use_robertas_framing(tok):
    assert tok.encode("hello", "world").tokens == [
        "<s>",
        "▁hello",
        "</s>",
        "</s>",
        "▁world",
        "</s>",
    ]


def test_ids_follow_the_piece_order(tok):
    assert [tok.token_to_id(p) for p in PIECES] == list(range(len(PIECES)))


def test_the_saved_folder_loads_with_autotokenizer(tmp_path: Path, tok):
    from transformers import AutoTokenizer

    save_tokenizer(tok, tmp_path, model_max_length=16)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded("ｈｅｌｌｏ world")["input_ids"] == [0, 4, 5, 2]
    assert (loaded.pad_token_id, loaded.mask_token_id, loaded.unk_token_id) == (1, 13, 3)
    assert loaded.model_max_length == 16


def test_pieces_must_start_with_xlmrs_specials():
    with pytest.raises(ValueError, match="first pieces"):
        build_tokenizer(["a", "b", "c", "d"], [0.0] * 4)
