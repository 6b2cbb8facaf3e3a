"""Measure the benchmark's properties with plain direct fine-tuning (DF).

    python -m fsf.synthetic.measure [--tasks topic pawsx] [--seeds 0 1 2] [--lr 1e-3]
                                    [--steps 300] [--model DIR] [--assets DIR] [--json FILE]

For each task and fine-tuning seed: one DF run of the pretrained checkpoint and one of the
same architecture from scratch (the control), evaluated on every language's test set every
50 steps. Forgetting is measured on the DF runs: cross-lingual sentence retrieval@1 between
parallel test sentences (en -> each target, mean-pooled, centred) before and after
fine-tuning, and per-layer linear CKA between the pretrained and the fine-tuned encoder.
The numbers in docs/synthetic.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import transformers
from transformers import AutoModel, AutoTokenizer

from fsf.cka import linear_cka
from fsf.synthetic.finetune import FinetuneConfig, FinetuneResult, finetune, load_split
from fsf.synthetic.probes import hidden_states, retrieval_at_1
from fsf.synthetic.world import SOURCE_LANGUAGE

__all__ = ["REGIMES", "forgetting", "main", "measure_task"]

# Default DF regime per task (lr, steps): batch 32, 10% warm-up, linear decay. The pair task
# learns more slowly (it stays at chance for ~100 steps) and collapses to chance at lr 2e-3.
REGIMES: dict[str, tuple[float, int]] = {"topic": (5e-4, 300), "pawsx": (5e-4, 600)}


def _texts(data: Path, lang: str) -> list[str]:
    recs = load_split(data, lang, "test")
    return [r.get("text") or r["sentence1"] for r in recs]


def forgetting(
    pretrained: torch.nn.Module, finetuned: torch.nn.Module, tokenizer, data: Path
) -> dict:
    """Retrieval@1 (last layer, mean over targets) before/after, and per-layer CKA."""
    langs = sorted(p.name for p in data.iterdir() if p.is_dir())
    texts = {lang: _texts(data, lang) for lang in langs}
    out: dict = {}
    reps = {}
    for name, enc in (("pretrained", pretrained), ("finetuned", finetuned)):
        reps[name] = {lang: hidden_states(enc, tokenizer, t) for lang, t in texts.items()}
        src = reps[name][SOURCE_LANGUAGE]
        per_layer = []
        for layer in range(len(src)):
            r = [
                retrieval_at_1(src[layer], reps[name][lang][layer])
                for lang in langs
                if lang != SOURCE_LANGUAGE
            ]
            per_layer.append(sum(r) / len(r))
        out[f"retrieval_{name}"] = per_layer
    n_layers = len(reps["pretrained"][SOURCE_LANGUAGE])
    out["cka"] = [
        linear_cka(
            torch.cat([reps["pretrained"][lang][layer] for lang in langs]),
            torch.cat([reps["finetuned"][lang][layer] for lang in langs]),
        )
        for layer in range(n_layers)
    ]
    return out


def _summary(runs: list[FinetuneResult]) -> dict:
    def ms(values: list[float]) -> tuple[float, float]:
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    src = [r.final[SOURCE_LANGUAGE] for r in runs]
    tgt = [r.final[SOURCE_LANGUAGE] - r.gap() for r in runs]
    peak = [
        max(h["acc"][SOURCE_LANGUAGE] - r.gap(i) for i, h in enumerate(r.history)) for r in runs
    ]
    langs = list(runs[0].final)
    return {
        "src": ms(src),
        "tgt": ms(tgt),
        "gap": ms([r.gap() for r in runs]),
        "peak_tgt": ms(peak),
        "per_lang": {lang: statistics.mean(r.final[lang] for r in runs) for lang in langs},
        "seconds": ms([r.seconds for r in runs]),
    }


def measure_task(
    task: str, assets: Path, model: Path, seeds: Sequence[int], lr: float, steps: int
) -> dict:
    """DF and scratch runs over ``seeds`` plus forgetting of the DF runs."""
    data = assets / "data" / task
    tokenizer = AutoTokenizer.from_pretrained(model)
    pre_encoder = AutoModel.from_pretrained(model).eval()
    out: dict = {"task": task, "lr": lr, "steps": steps, "seeds": list(seeds)}
    for kind in ("pretrained", "scratch"):
        runs, forget = [], []
        for seed in seeds:
            cfg = FinetuneConfig(
                task=task, lr=lr, steps=steps, seed=seed, from_scratch=kind == "scratch"
            )
            r = finetune(model, data, cfg, keep_model=kind == "pretrained")
            runs.append(r)
            print(
                f"{task} {kind} seed {seed}: "
                + " ".join(f"{k}={v:.3f}" for k, v in r.final.items())
                + f" gap={r.gap():+.3f} ({r.seconds:.1f} s)",
                file=sys.stderr,
            )
            if r.model is not None:
                forget.append(forgetting(pre_encoder, r.model.base_model, tokenizer, data))
                r.model = None
        out[kind] = _summary(runs) | {
            "history": [[{"step": h["step"], **h["acc"]} for h in r.history] for r in runs]
        }
        if forget:
            n = len(forget[0]["cka"])
            out["forgetting"] = {
                key: [statistics.mean(f[key][i] for f in forget) for i in range(n)]
                for key in forget[0]
            }
    return out


def _fmt(m: tuple[float, float]) -> str:
    return f"{m[0]:.3f} ± {m[1]:.3f}"


def _table(results: list[dict]) -> str:
    lines = [
        "| task | lr, steps | model | src | mean tgt | gap | peak tgt | per language (final) | s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for kind in ("pretrained", "scratch"):
            s = res[kind]
            langs = " ".join(f"{k} {v:.2f}" for k, v in s["per_lang"].items())
            lines.append(
                f"| {res['task']} | {res['lr']:g}, {res['steps']} | {kind} | {_fmt(s['src'])} | {_fmt(s['tgt'])} | "
                f"{_fmt(s['gap'])} | {_fmt(s['peak_tgt'])} | {langs} | {s['seconds'][0]:.1f} |"
            )
    lines += ["", "| task | layer | retrieval@1 pretrained | retrieval@1 fine-tuned | CKA |"]
    lines.append("|---|---|---|---|---|")
    for res in results:
        f = res["forgetting"]
        for layer, (a, b, c) in enumerate(
            zip(f["retrieval_pretrained"], f["retrieval_finetuned"], f["cka"], strict=True)
        ):
            lines.append(f"| {res['task']} | {layer} | {a:.3f} | {b:.3f} | {c:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements and print a markdown table (and optionally write JSON)."""
    from fsf.synthetic import assets_dir

    p = argparse.ArgumentParser(prog="python -m fsf.synthetic.measure", description=__doc__)
    p.add_argument("--tasks", nargs="+", default=["topic", "pawsx"], choices=["topic", "pawsx"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--lr", type=float, default=None, help="default: REGIMES[task]")
    p.add_argument("--steps", type=int, default=None, help="default: REGIMES[task]")
    p.add_argument("--assets", type=Path, default=assets_dir(), help="build folder with data/")
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default ASSETS/model)")
    p.add_argument("--json", type=Path, default=None, help="write all results here")
    args = p.parse_args(argv)
    model = args.model or args.assets / "model"
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    results = []
    for task in args.tasks:
        lr, steps = REGIMES[task]
        results.append(
            measure_task(task, args.assets, model, args.seeds, args.lr or lr, args.steps or steps)
        )
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
