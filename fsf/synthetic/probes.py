"""Cheap probes of cross-lingual alignment and of forgetting.

* :func:`topic_probe`: each non-cognate topic word of a target language is assigned the
  topic of the nearest ``en`` topic centroid in the input-embedding space. ``raw`` uses the
  embeddings as they are; the study found that only *raw* alignment (no per-language mean
  removed) predicts zero-shot transfer, because a per-language offset moves whole languages
  onto one class.
* :func:`retrieval_at_1`: parallel sentences, mean-pooled hidden states (centred per language),
  nearest ``en`` neighbour by cosine; the share that finds its own translation.
* :func:`linear_cka`: linear CKA between two sets of representations of the same inputs
  (re-exported from :mod:`fsf.cka`, the one implementation in fsf).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fsf.cka import pooled_hidden_states
from fsf.synthetic.world import NUM_TOPICS, SOURCE_LANGUAGE, World

__all__ = ["encode", "hidden_states", "retrieval_at_1", "topic_probe"]


@torch.no_grad()
def topic_probe(
    embeddings: torch.Tensor,
    vocab: dict[str, int],
    world: World,
    centred: bool = False,
    words: str = "all",
) -> dict[str, float]:
    """Topic-centroid probe accuracy per target language (chance = 1 / NUM_TOPICS).

    ``words``: ``"all"`` non-cognate topic words of the language, ``"linked"`` only those the
    pretraining corpus's cross-lingual signals cover for it (:attr:`World.linked`),
    ``"unlinked"`` only the others (a language without unlinked words is left out)."""
    if words not in ("all", "linked", "unlinked"):
        raise ValueError(f"words must be 'all', 'linked' or 'unlinked', not {words!r}")
    emb = embeddings.detach().float()

    def vecs(lang: str, concepts: list[str]) -> torch.Tensor:
        v = emb[[vocab[world.lexicon[lang][c]] for c in concepts]]
        if centred:
            all_content = [c for c, (k, _) in world.concepts.items() if k in ("N", "V", "A")]
            v = v - emb[[vocab[world.lexicon[lang][c]] for c in all_content]].mean(0)
        return v

    topical = [c for c, (_, t) in world.concepts.items() if t >= 0]
    src = vecs(SOURCE_LANGUAGE, topical)
    labels = torch.tensor([world.topic_of(c) for c in topical])
    centroids = torch.stack([src[labels == t].mean(0) for t in range(NUM_TOPICS)])
    centroids = nn.functional.normalize(centroids, dim=-1)
    out = {}
    for lang in world.languages:
        if lang == SOURCE_LANGUAGE:
            continue
        own = [c for c in topical if world.lexicon[lang][c] != world.lexicon[SOURCE_LANGUAGE][c]]
        if words != "all":
            own = [c for c in own if (c in world.linked[lang]) == (words == "linked")]
        if not own:
            continue
        pred = (nn.functional.normalize(vecs(lang, own), dim=-1) @ centroids.T).argmax(-1)
        gold = torch.tensor([world.topic_of(c) for c in own])
        out[lang] = (pred == gold).float().mean().item()
    return out


def encode(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenize a batch of single sentences for the model (padded, truncated)."""
    return tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )


def hidden_states(
    encoder: nn.Module, tokenizer, texts: Sequence[str], max_length: int = 64, batch: int = 256
) -> list[torch.Tensor]:
    """Mean-pooled hidden states of every layer (index 0 = embeddings) for ``texts``."""
    batches = (
        encode(tokenizer, texts[i : i + batch], max_length) for i in range(0, len(texts), batch)
    )
    return pooled_hidden_states(encoder, batches, "mean")


def retrieval_at_1(source: torch.Tensor, target: torch.Tensor) -> float:
    """Share of ``target`` rows whose nearest ``source`` row (cosine, centred) is the same index."""
    s = nn.functional.normalize(source - source.mean(0), dim=-1)
    t = nn.functional.normalize(target - target.mean(0), dim=-1)
    pred = (t @ s.T).argmax(-1)
    return (pred == torch.arange(len(t))).float().mean().item()
