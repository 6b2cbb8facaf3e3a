"""The analyses' matplotlib figures (Agg backend; every function writes one PNG)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fsf.analysis.probe import ProbeEffects

__all__ = ["cka_heatmaps", "probe_plot", "score_curves"]

_PART_COLORS = {"all": "#4c72b0", "attention": "#dd8452", "ffn": "#55a868"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def probe_plot(effects: ProbeEffects, path: Path, *, s1_drop: float | None = None) -> None:
    """Like the paper's Fig. 3: per action (rows), the change of the source score and of the
    target mean (columns) against the baseline for each layer, one bar per part, error bars
    = standard error over seeds."""
    plt = _plt()
    actions = [a for a in ("reinit", "freeze") if any(e["action"] == a for e in effects.entries)]
    parts = [p for p in ("all", "attention", "ffn") if any(e["part"] == p for e in effects.entries)]
    layers = sorted({e["layer"] for e in effects.entries})
    fig, axes = plt.subplots(
        len(actions),
        2,
        figsize=(max(7.5, 1.1 * len(layers) * 2 + 3), 3.0 * len(actions) + 0.9),
        squeeze=False,
        sharex=True,
        sharey="row",
    )
    width = 0.8 / len(parts)
    x = np.arange(len(layers))
    for row, action in enumerate(actions):
        for col, (key, label) in enumerate((("source", "source"), ("target", "target mean"))):
            ax = axes[row, col]
            for k, part in enumerate(parts):
                vals, errs = [], []
                for layer in layers:
                    e = effects.get(action, part, layer)
                    d = None if e is None else e[f"d_{key}"]
                    se = None if e is None else e[f"se_{key}"]
                    vals.append(np.nan if d is None else d * 100)
                    errs.append(0.0 if se is None else se * 100)
                ax.bar(
                    x + (k - (len(parts) - 1) / 2) * width,
                    vals,
                    width,
                    yerr=errs,
                    capsize=2,
                    color=_PART_COLORS[part],
                    label=part,
                )
            ax.axhline(0, color="k", lw=0.8)
            if key == "target" and action == "reinit" and s1_drop:
                ax.axhline(-s1_drop * 100, color="#c44e52", lw=1, ls="--")
            ax.set_title(f"{action}: change of the {label}", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
            if col == 0:
                ax.set_ylabel(f"{effects.metric} x 100 vs baseline")
    for ax in axes[-1]:
        ax.set_xticks(x, [str(layer) for layer in layers])
        ax.set_xlabel("layer (1 = nearest the embeddings)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if s1_drop and "reinit" in actions:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="#c44e52", ls="--"))
        labels.append(f"-{s1_drop * 100:g} (S_I threshold)")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, title=None)
    b = effects.baseline
    fig.suptitle(
        f"Layer probes ({effects.task}, {effects.split}; baseline source "
        f"{b['source'] * 100:.1f}, target mean {b['target_mean'] * 100:.1f}; "
        f"{b['n']} seed(s))",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cka_heatmaps(
    panels: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]],
    path: Path,
    *,
    title: str = "",
) -> None:
    """One row per policy (`panels[name] = (steps, layers, {lang: layers x steps})`), one
    column per language plus their mean: CKA with the pretrained model as a heatmap."""
    plt = _plt()
    names = list(panels)
    langs = sorted({lang for _, _, d in panels.values() for lang in d})
    cols = [*langs, "mean"] if len(langs) > 1 else langs
    finite = [m[np.isfinite(m)] for _, _, d in panels.values() for m in d.values()]
    lo = min((float(v.min()) for v in finite if v.size), default=0.0)
    vmin = max(0.0, math.floor(lo * 20) / 20)
    fig, axes = plt.subplots(
        len(names),
        len(cols),
        figsize=(2.3 * len(cols) + 1.6, 2.1 * len(names) + 1.0),
        squeeze=False,
        sharey=True,
    )
    im = None
    for r, name in enumerate(names):
        steps, layers, data = panels[name]
        for c, lang in enumerate(cols):
            ax = axes[r, c]
            if lang == "mean":
                with warnings.catch_warnings():  # all-NaN cells stay NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mat = np.nanmean(np.stack(list(data.values())), axis=0)
            else:
                mat = data.get(lang)
            if mat is None or not len(steps):
                ax.set_visible(False)
                continue
            im = ax.imshow(
                mat,
                aspect="auto",
                origin="lower",
                cmap="magma",
                vmin=vmin,
                vmax=1.0,
                extent=(-0.5, len(steps) - 0.5, layers[0] - 0.5, layers[-1] + 0.5),
            )
            ticks = np.unique(
                np.linspace(0, len(steps) - 1, min(4, len(steps))).round().astype(int)
            )
            ax.set_xticks(ticks, [str(int(steps[t])) for t in ticks], fontsize=7)
            ax.set_yticks(layers, [str(int(v)) for v in layers], fontsize=7)
            if r == 0:
                ax.set_title(lang, fontsize=10)
            if c == 0:
                ax.set_ylabel(f"{name}\nlayer (0 = emb.)", fontsize=9)
            if r == len(names) - 1:
                ax.set_xlabel("step", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.85, label="linear CKA vs pretrained")
    fig.suptitle(title or "Forgetting: per-layer CKA with the pretrained model", fontsize=11)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def score_curves(panels: dict[str, dict[str, Any]], path: Path, *, task: str, metric: str) -> None:
    """One panel per policy: source score, target mean (left axis) and their gap (right
    axis) over steps, mean over runs; `panels[p]` has `steps`, `source`, `target`,
    `boundary` (detected P1/P2 step or None)."""
    plt = _plt()
    names = list(panels)
    ncols = min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.9 * ncols, 3.1 * nrows + 0.7), squeeze=False, sharey=True
    )
    for ax, name in zip(axes.flat, names, strict=False):
        p = panels[name]
        x = p["steps"]
        ax.plot(x, p["source"] * 100, "-", color="#4c72b0", lw=1.8, label="source (dev)")
        ax.plot(x, p["target"] * 100, "-", color="#55a868", lw=1.8, label="target mean (dev)")
        gap_ax = ax.twinx()
        gap_ax.plot(x, (p["source"] - p["target"]) * 100, ":", color="#8172b2", lw=1.5)
        gap_ax.set_ylim(-5, 25)
        gap_ax.tick_params(labelsize=7, colors="#8172b2")
        if p.get("boundary") is not None:
            ax.axvline(p["boundary"], color="#c44e52", ls="--", lw=1.2)
        ax.set_title(f"policy: {name}", fontsize=10)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{metric} x 100", fontsize=9)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="#4c72b0", lw=1.8),
        Line2D([], [], color="#55a868", lw=1.8),
        Line2D([], [], color="#8172b2", ls=":", lw=1.5),
        Line2D([], [], color="#c44e52", ls="--", lw=1.2),
    ]
    labels = [
        "source (dev)",
        "target mean (dev)",
        "gap (right axis, points)",
        "P1/P2 detected from the loss",
    ]
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=9)
    fig.suptitle(f"{task}: source, target mean and gap over training (mean over seeds)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
