"""Probes and a tiny pretraining run (seconds)."""

from __future__ import annotations

import pytest
import torch

from fsf.cka import linear_cka
from fsf.synthetic.data import CorpusSpec, pretraining_corpus
from fsf.synthetic.probes import retrieval_at_1, topic_probe
from fsf.synthetic.world import NUM_TOPICS, World


def test_cka_and_retrieval_on_known_inputs() -> None:
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3 * x + 1) == pytest.approx(1.0)
    assert retrieval_at_1(x, x + 0.01) == 1.0
    assert retrieval_at_1(x, x[torch.randperm(50)]) < 0.2


def test_topic_probe_is_perfect_on_topic_aligned_embeddings(world: World) -> None:
    forms = sorted({f for lex in world.lexicon.values() for f in lex.values()})
    vocab = {f: i for i, f in enumerate(forms)}
    emb = torch.randn(len(forms), 16, generator=torch.Generator().manual_seed(0)) * 0.01
    for lex in world.lexicon.values():
        for concept, form in lex.items():
            topic = world.topic_of(concept)
            if topic >= 0:
                emb[vocab[form], topic] += 1.0
    targets = ("fk", "fr", "ja", "cy", "sw", "ur")
    assert topic_probe(emb, vocab, world) == dict.fromkeys(targets, 1.0)
    assert topic_probe(emb, vocab, world, words="linked") == dict.fromkeys(targets, 1.0)
    # only mid- and low-resource languages have unlinked words
    assert set(topic_probe(emb, vocab, world, words="unlinked")) == {"ja", "cy", "sw", "ur"}
    random_probe = topic_probe(torch.randn(len(forms), 16), vocab, world)
    assert all(v < 0.8 for v in random_probe.values())
    assert NUM_TOPICS == 4


def test_tiny_pretraining_runs_and_fails_loudly_without_alignment(world: World) -> None:
    from fsf.synthetic.pretrain import AlignmentError, PretrainConfig, pretrain
    from fsf.synthetic.tokenizer import build_tokenizer

    corpus = list(pretraining_corpus(world, CorpusSpec(sentences_per_language=40)))
    # monolingual: 40 per high-resource language, 20 per mid, 8 per low; TLM pairs: half
    assert sum(b is None for _, b in corpus) == 3 * 40 + 2 * 20 + 2 * 8
    assert sum(b is not None for _, b in corpus) == 88
    texts = [t for pair in corpus for t in pair if t]
    tok = build_tokenizer([*texts, " ".join(world.vocabulary())], 64)
    cfg = PretrainConfig(num_layers=1, steps=3, batch_size=8, max_extra_steps=2, probe_every=2)
    steps = []
    with pytest.raises(AlignmentError, match="did not emerge after 5 steps"):
        pretrain(corpus, tok, world, cfg, progress=lambda s, t, info: steps.append(s))
    assert steps == [1, 2, 3, 4, 5]


def test_tokenizer_is_deterministic_and_xlmr_shaped(world: World) -> None:
    from fsf.synthetic.tokenizer import SPECIAL_TOKENS, build_tokenizer

    texts = [
        t
        for pair in pretraining_corpus(world, CorpusSpec(sentences_per_language=20))
        for t in pair
        if t
    ]
    a, b = (build_tokenizer(texts, 64) for _ in range(2))
    assert a.get_vocab() == b.get_vocab()
    assert a.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    enc = a("Ana .", "Hana .")
    assert a.convert_ids_to_tokens(enc["input_ids"]) == [
        "<s>",
        "Ana",
        ".",
        "</s>",
        "</s>",
        "Hana",
        ".",
        "</s>",
    ]
