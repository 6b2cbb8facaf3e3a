"""Pretrain the tiny XLM-R encoder on the synthetic corpus (MLM + TLM + code-switching).

The recipe is the feasibility study's (docs/synthetic.md): masked language modelling with
80/10/10 masking over a corpus that holds monolingual comparable text, word-level
code-switched sentences and translation pairs (``<s> a </s></s> b </s>``, XLM's TLM).
MLM alone did not align the languages within a CPU budget; the code-switching and the
translation pairs make the alignment appear after roughly 1000 steps.

Alignment is checked while training (:func:`fsf.synthetic.probes.topic_probe`, raw, on the
words the cross-lingual signals cover for each language, :attr:`World.linked`) and at the
end: if a target language's linked words stay below ``PretrainConfig.probe_threshold``,
training goes on at the floor learning rate for up to ``max_extra_steps``; if it still fails,
:class:`AlignmentError` is raised and nothing is saved. The probe of the unlinked words
(those a low-resource language learns from its monolingual text alone) is logged and
reported, never required: how far they align is a property of the world, not a validity
condition.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForMaskedLM

from fsf.synthetic.probes import topic_probe
from fsf.synthetic.world import World

__all__ = ["AlignmentError", "PretrainConfig", "PretrainResult", "model_config", "pretrain"]


class AlignmentError(RuntimeError):
    """Pretraining ended without cross-lingual alignment (the benchmark would be invalid)."""


@dataclass(frozen=True)
class PretrainConfig:
    """Architecture and optimisation of the synthetic encoder's pretraining."""

    num_layers: int = 12
    hidden_size: int = 64
    num_heads: int = 4
    ffn_size: int = 256
    max_length: int = 64  # tokens incl. specials; positions = max_length + 2 (XLM-R offset)
    steps: int = 4000
    batch_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # linear decay ends at this share of the peak
    warmup_steps: int = 120
    weight_decay: float = 0.01
    beta2: float = 0.98
    mask_prob: float = 0.15
    probe_every: int = 250
    probe_threshold: float = 0.8
    max_extra_steps: int = 1000
    seed: int = 0


@dataclass
class PretrainResult:
    """What pretraining produced, with its log."""

    model: XLMRobertaForMaskedLM
    steps: int
    seconds: float
    final_loss: float
    probe: dict[str, float]
    probe_centred: dict[str, float]
    probe_linked: dict[str, float]
    probe_unlinked: dict[str, float]
    log: list[dict]

    def summary(self) -> dict:
        """A JSON-serialisable summary (no model)."""
        return {k: v for k, v in asdict(self).items() if k != "model"} | {"log": self.log}


def model_config(tokenizer: PreTrainedTokenizerFast, cfg: PretrainConfig) -> XLMRobertaConfig:
    """The ``XLMRobertaConfig`` of the synthetic encoder."""
    return XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.ffn_size,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=cfg.max_length + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        layer_norm_eps=1e-5,
        tie_word_embeddings=True,
    )


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of index batches; similar lengths share a batch to save padding."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    out = []
    for i in range(0, len(order), chunk):
        part = order[i : i + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        out += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def _mask(
    ids: torch.Tensor,
    special: torch.Tensor,
    vocab_size: int,
    n_special: int,
    cfg: PretrainConfig,
    gen: torch.Generator,
    mask_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: 15% of real tokens are predicted; of those 80% <mask>, 10% random, 10% kept."""
    labels = ids.clone()
    chosen = (torch.rand(ids.shape, generator=gen) < cfg.mask_prob) & ~special
    labels[~chosen] = -100
    inputs = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    inputs[chosen & (r < 0.8)] = mask_id
    rand = chosen & (r >= 0.8) & (r < 0.9)
    inputs[rand] = torch.randint(n_special, vocab_size, ids.shape, generator=gen)[rand]
    return inputs, labels


def pretrain(
    corpus: list[tuple[str, str | None]],
    tokenizer: PreTrainedTokenizerFast,
    world: World,
    cfg: PretrainConfig,
    progress: Callable[[int, int, dict], None] | None = None,
) -> PretrainResult:
    """Pretrain from scratch on ``corpus`` and return the model once it is aligned.

    ``progress(step, total, info)`` is called after every step (``info`` holds the running
    loss and, at probe steps, the probe). Raises :class:`AlignmentError` if alignment did
    not emerge.
    """
    torch.manual_seed(cfg.seed)
    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    singles = [a for a, b in corpus if b is None]
    pairs = [(a, b) for a, b in corpus if b is not None]
    enc = tokenizer(singles, truncation=True, max_length=cfg.max_length)["input_ids"]
    if pairs:
        enc += tokenizer(
            [a for a, _ in pairs],
            [b for _, b in pairs],
            truncation=True,
            max_length=cfg.max_length,
        )["input_ids"]
    lengths = np.array([len(x) for x in enc])
    pad, mask_id = tokenizer.pad_token_id, tokenizer.mask_token_id
    n_special = len(tokenizer.all_special_ids)
    vocab = tokenizer.get_vocab()

    model = XLMRobertaForMaskedLM(model_config(tokenizer, cfg))
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "embeddings" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim > 1 and "embeddings" not in n)
    ]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, cfg.beta2),
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        return cfg.lr * (1 - (1 - cfg.min_lr_ratio) * frac)

    def probe() -> dict[str, dict[str, float]]:
        emb = model.get_input_embeddings().weight
        return {
            "probe_raw": topic_probe(emb, vocab, world),
            "probe_centred": topic_probe(emb, vocab, world, centred=True),
            "probe_linked": topic_probe(emb, vocab, world, words="linked"),
            "probe_unlinked": topic_probe(emb, vocab, world, words="unlinked"),
        }

    log: list[dict] = []
    batches: list[np.ndarray] = []
    step, t0, ema = 0, time.perf_counter(), math.nan
    limit = cfg.steps + cfg.max_extra_steps
    linked: dict[str, float] = {}
    while step < limit:
        if not batches:
            batches = _batches(lengths, cfg.batch_size, np_rng)
        idx = batches.pop()
        width = int(lengths[idx].max())
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : lengths[i]] = torch.tensor(enc[i])
        special = ids < n_special
        inputs, labels = _mask(ids, special, len(tokenizer), n_special, cfg, gen, mask_id)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=inputs, attention_mask=(ids != pad).long(), labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if math.isnan(ema) else 0.98 * ema + 0.02 * loss.item()
        info: dict = {"loss": ema}
        if step % cfg.probe_every == 0 or step == cfg.steps:
            probes = probe()
            linked = probes["probe_linked"]
            info |= {"probe": linked}
            log.append(
                {
                    "step": step,
                    "loss": round(ema, 4),
                    "seconds": round(time.perf_counter() - t0, 1),
                    **probes,
                }
            )
        if progress:
            progress(step, cfg.steps, info)
        if step >= cfg.steps and linked and min(linked.values()) >= cfg.probe_threshold:
            break
    probes = probe()
    if min(probes["probe_linked"].values()) < cfg.probe_threshold:
        raise AlignmentError(
            f"cross-lingual alignment did not emerge after {step} steps: raw topic probe of "
            f"the linked words {probes['probe_linked']} (need >= {cfg.probe_threshold} for "
            "every target language). Pretrain longer (--steps) or try another --seed."
        )
    model.eval()
    return PretrainResult(
        model=model,
        steps=step,
        seconds=time.perf_counter() - t0,
        final_loss=ema,
        probe=probes["probe_raw"],
        probe_centred=probes["probe_centred"],
        probe_linked=probes["probe_linked"],
        probe_unlinked=probes["probe_unlinked"],
        log=log,
    )
