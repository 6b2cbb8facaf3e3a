"""The worker's CKA monitor: forgetting measured against the pretrained model while training.

Built once, right after the pretrained weights are loaded (before NoisyTune noise, a layer
probe, or any update): it keeps the probe batches (the first `probe_size` examples of each
language's split) and the pretrained model's pooled hidden states on them, never a second
model. `measure(model)` compares the current model's states with them, layer by layer.
"""

from __future__ import annotations

from typing import Any

import torch

from fsf.cka import linear_cka, pooled_hidden_states
from fsf.config import RunConfig
from fsf.errors import FsfError
from fsf.tasks import Task

__all__ = ["CkaMonitor", "VCkaGate"]


class CkaMonitor:
    """Per-layer linear CKA between the pretrained and the current model, per language."""

    def __init__(
        self,
        batches: dict[str, list[dict[str, torch.Tensor]]],
        reference: dict[str, list[torch.Tensor]],
        pooling: str,
    ):
        self.batches = batches
        self.reference = reference
        self.pooling = pooling

    @classmethod
    def build(
        cls,
        config: RunConfig,
        task: Task,
        tokenizer: Any,
        features: dict[str, dict[str, list[dict[str, Any]]]],
        pad_id: int,
        model: torch.nn.Module,
    ) -> CkaMonitor:
        """`features[split][lang]`: encoded eval examples when already loaded (else loaded
        here); `model`: the pretrained model, unchanged."""
        cfg = config.analysis.cka
        batches: dict[str, list[dict[str, torch.Tensor]]] = {}
        for lang in cfg.languages or config.languages:
            feats = features.get(cfg.split, {}).get(lang)
            if feats is None:
                feats = task.encode(task.load(lang, cfg.split)[: cfg.probe_size], tokenizer)
            feats = feats[: cfg.probe_size]
            if len(feats) < 2:
                raise FsfError(
                    f"analysis.cka: the {lang} {cfg.split} split has {len(feats)} example(s); "
                    "CKA needs at least 2 (choose another analysis.cka.split)"
                )
            batches[lang] = [
                task.collate(feats[i : i + cfg.batch_size], pad_id)
                for i in range(0, len(feats), cfg.batch_size)
            ]
        reference = {
            lang: pooled_hidden_states(model, b, cfg.pooling) for lang, b in batches.items()
        }
        return cls(batches, reference, cfg.pooling)

    def measure(self, model: torch.nn.Module, device: torch.device) -> dict[str, list[float]]:
        """Per language, CKA of every layer (0 = embeddings) with the pretrained states."""
        out = {}
        for lang, batches in self.batches.items():
            states = pooled_hidden_states(model, batches, self.pooling, device)
            out[lang] = [
                linear_cka(ref, cur) for ref, cur in zip(self.reference[lang], states, strict=True)
            ]
        return out


class VCkaGate:
    """`policy_iv: cka`'s measurement: the mean over the V_II layers of the linear CKA between
    their pooled hidden states and the pretrained model's, on a fixed probe batch (the first
    `policy.cka.probe_size` source-language training examples), fed to a `CkaTrend`.

    Built before any update (and before NoisyTune noise or a layer probe); keeps only the
    pretrained states of the probe batch. Every rank measures on the same batch with the same
    weights; the value is averaged over ranks so that all of them agree exactly."""

    def __init__(
        self,
        batches: list[dict[str, torch.Tensor]],
        layers: list[int],
        reference: list[torch.Tensor],
        trend: Any,
    ):
        self.batches = batches
        self.layers = layers  # hidden-state indices (1-based layer numbers; 0 = embeddings)
        self.reference = reference
        self.trend = trend
        self.last: float | None = None

    @classmethod
    def build(
        cls,
        config: RunConfig,
        task: Task,
        train_features: list[dict[str, Any]],
        pad_id: int,
        model: torch.nn.Module,
        layers: list[int],
    ) -> VCkaGate:
        from fsf.policies import CkaTrend

        cfg = config.policy.cka
        feats = train_features[: cfg.probe_size]
        if len(feats) < 2 or not layers:
            raise FsfError(
                "policy_iv: cka needs at least 2 source training examples and a non-empty V_II "
                f"set (got {len(feats)} examples, V_II layers {layers})"
            )
        batches = [task.collate(feats[i : i + 64], pad_id) for i in range(0, len(feats), 64)]
        states = pooled_hidden_states(model, batches, "mean")
        reference = [states[i] for i in layers]
        return cls(batches, layers, reference, CkaTrend(cfg.window, cfg.min_drop))

    def measure(self, model: torch.nn.Module, device: torch.device, step: int) -> bool | None:
        """Measure at `step`, feed the trend, return whether the CKA is still falling."""
        import torch.distributed as dist

        states = pooled_hidden_states(model, self.batches, "mean", device)
        values = [
            linear_cka(ref, states[i]) for ref, i in zip(self.reference, self.layers, strict=True)
        ]
        value = torch.tensor(sum(values) / len(values), dtype=torch.float64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(value)
            value /= dist.get_world_size()
        self.last = float(value)
        return self.trend.update(step, self.last)
