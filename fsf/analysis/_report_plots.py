"""The report's matplotlib figures (Agg backend; every function writes one PNG)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fsf.results.reader import Results

__all__ = [
    "FEW_TRIALS",
    "delta_heatmap",
    "evp_plot",
    "gap_plot",
    "importance_plot",
    "language_heatmap",
    "p1_shading",
    "pareto_plot",
    "text_colour",
    "trained_trials",
]

_P1_COLOR = "#f6c85f"
_BOUNDARY_COLOR = "#c44e52"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def text_colour(rgba: Any) -> str:
    """Black or white, whichever reads on a cell of colour `rgba` (its relative luminance,
    WCAG's formula on linearised sRGB)."""

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else "white"


def _colors(names: list[str]) -> dict[str, Any]:
    cmap = _plt().get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(sorted(set(names)))}


def p1_shading(
    curve: dict[str, Any],
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(P1 spans, spans where the switch lies somewhere) of one policy's curves.

    With per-step phases (`curve["step_phase"]`: steps 1..T and the share of runs in P1 at
    each, from the training-loss rows) a P1 span ends at the first step most runs spent in
    P2: exactly where the switch is. With evaluation phases only (`curve["phase"]`), a span
    ends at the last evaluation still in P1, and the gap to the next evaluation (where P2 was
    first seen) is returned as uncertain: the switch happened in it, but where is not on
    record. (Giving each evaluation the steps up to the next one, as the report once did,
    drew P1 up to the first evaluation in P2: with evaluations every 50 steps, up to ~50 steps
    past the switch.)"""
    step_phase = curve.get("step_phase")
    if step_phase is not None and len(step_phase[0]):
        steps, share = step_phase
        spans, start = [], None
        for s, p in zip(np.asarray(steps).tolist(), np.asarray(share).tolist(), strict=True):
            if p >= 0.5 and start is None:
                start = max(s - 1, 0)
            elif p < 0.5 and start is not None:
                spans.append((float(start), float(s)))  # up to the first step in P2
                start = None
        if start is not None:
            spans.append((float(start), float(steps[-1])))
        return spans, []
    steps, p1 = curve["phase"]
    spans, unsure, start = [], [], None
    for i, (s, share) in enumerate(zip(np.asarray(steps).tolist(), np.asarray(p1).tolist(),
                                       strict=True)):  # fmt: skip
        if share >= 0.5 and start is None:
            start = s
        elif share < 0.5 and start is not None:
            spans.append((float(start), float(steps[i - 1])))
            unsure.append((float(steps[i - 1]), float(s)))
            start = None
    if start is not None:
        spans.append((float(start), float(steps[-1])))
    return spans, unsure


def gap_plot(
    curves: dict[str, dict[str, Any]],
    path: Path,
    *,
    task: str,
    metric: str,
    boundaries: dict[str, float] | None = None,
) -> None:
    """One panel per policy: dev and test gap (x100) over steps, P1 shaded; `boundaries`
    (policy -> step): the P1/P2 boundary detected from the loss, drawn as a dotted line."""
    plt = _plt()
    from matplotlib.patches import Patch

    policies = list(curves)
    ncols = min(3, len(policies))
    nrows = math.ceil(len(policies) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows + 0.8), sharey=True, squeeze=False
    )
    unsure_any = False
    for ax, policy in zip(axes.flat, policies, strict=False):
        c = curves[policy]
        spans, unsure = p1_shading(c)
        for a, b in spans:
            ax.axvspan(a, b, color=_P1_COLOR, alpha=0.35, lw=0)
        for a, b in unsure:
            ax.axvspan(a, b, facecolor="none", edgecolor=_P1_COLOR, hatch="//", lw=0)
            unsure_any = True
        for split, style in (("dev", "-"), ("test", "--")):
            x, gaps = c[split]
            if not len(x):
                continue
            with np.errstate(all="ignore"):
                mean = np.nanmean(gaps, axis=0) * 100
                std = np.nanstd(gaps, axis=0) * 100
            ax.plot(x, mean, style, marker="o", ms=3, lw=1.8, label=f"{split} gap")
            if gaps.shape[0] > 1:
                ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        if boundaries and boundaries.get(policy) is not None:
            ax.axvline(boundaries[policy], color=_BOUNDARY_COLOR, ls=":", lw=1.8)
        ax.set_title(f"policy: {policy}", fontsize=11)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"source - target mean\n({metric} x 100)")
    for ax in list(axes.flat)[len(policies) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    handles.append(Patch(color=_P1_COLOR, alpha=0.35, label="P1 (recorded phase)"))
    labels.append("P1 (recorded phase; unshaded: P2)")
    if unsure_any:
        handles.append(Patch(facecolor="none", edgecolor=_P1_COLOR, hatch="//"))
        labels.append("switch between these evaluations (no per-step phase on record)")
    if boundaries:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color=_BOUNDARY_COLOR, ls=":", lw=1.8))
        labels.append("P1/P2 detected from the loss")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(
        f"{task}: cross-lingual gap over training (best configuration per policy; search stage)"
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def language_heatmap(
    langs: list[str],
    policies: list[str],
    mat: np.ndarray,
    path: Path,
    *,
    task: str,
    metric: str,
    source: str | None,
    stage: str = "search stage",
) -> None:
    """Languages (rows) x policies (columns), cells annotated with the score x100 in the
    colour that reads on the cell; `stage` names the runs in the title."""
    plt = _plt()
    fig, ax = plt.subplots(
        figsize=(max(5.0, 1.1 * len(policies) + 3), max(3.0, 0.36 * len(langs) + 1.6))
    )
    data = mat * 100
    im = ax.imshow(data, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(policies)), policies, rotation=30, ha="right")
    ax.set_yticks(range(len(langs)), [f"{x} (source)" if x == source else x for x in langs])
    for i in range(len(langs)):
        for j in range(len(policies)):
            v = data[i, j]
            if np.isfinite(v):
                colour = text_colour(im.cmap(im.norm(v)))
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(im, ax=ax, label=f"test {metric} x 100")
    ax.set_xlabel("policy (its best configuration)")
    ax.set_ylabel("language")
    ax.set_title(f"{task}: test score per language ({stage})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def delta_heatmap(
    langs: list[str],
    policies: list[str],
    delta: np.ndarray,
    verdict: np.ndarray,
    path: Path,
    *,
    task: str,
    metric: str,
    baseline: str,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    stage: str = "search stage",
) -> list[tuple[int, int, str, str]]:
    """Languages x policies: the paired difference to the baseline (x100) and its 95%
    interval (`low`, `high`) on a diverging scale where the interval excludes 0; grey cells
    marked '~' where it contains 0, and '?' where there is no interval (fewer than 2 shared
    seeds). Each cell's text is black or white by the cell's luminance; returns the texts
    drawn, (row, column, text, colour)."""
    plt = _plt()
    from matplotlib.colors import ListedColormap

    data = delta * 100
    lo = np.full_like(data, np.nan) if low is None else low * 100
    hi = np.full_like(data, np.nan) if high is None else high * 100
    lim = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    significant = np.isin(verdict, ["better", "worse"])
    fig, ax = plt.subplots(
        figsize=(max(5.5, 1.5 * len(policies) + 3), max(3.0, 0.55 * len(langs) + 1.8))
    )
    grey = "#e2e2e2"
    ax.imshow(np.where(np.isfinite(data) & ~significant, 0.0, np.nan),
              cmap=ListedColormap([grey]), aspect="auto")  # fmt: skip
    im = ax.imshow(
        np.where(significant, data, np.nan), aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim
    )
    ax.set_xticks(range(len(policies)), policies, rotation=30, ha="right")
    ax.set_yticks(range(len(langs)), langs)
    mark = {"better": "", "worse": "", "within noise": "~", "untested": "?"}
    drawn = []
    for i in range(len(langs)):
        for j in range(len(policies)):
            v = data[i, j]
            if not np.isfinite(v):
                continue
            text = f"{mark.get(str(verdict[i, j]), '')}{v:+.1f}"
            if np.isfinite(lo[i, j]) and np.isfinite(hi[i, j]):
                text += f"\n[{lo[i, j]:+.1f}, {hi[i, j]:+.1f}]"
            rgba = im.cmap(im.norm(v)) if significant[i, j] else (0.886, 0.886, 0.886, 1.0)
            colour = text_colour(rgba)
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=colour)
            drawn.append((i, j, text, colour))
    fig.colorbar(im, ax=ax, label=f"test {metric} x 100, minus {baseline}'s")
    ax.set_xlabel("policy (its best configuration)")
    ax.set_ylabel("language")
    ax.set_title(
        f"{task}: difference to {baseline} ({stage}), [95% interval]\n(grey: '~' the interval "
        "contains 0, '?' one shared seed, untested)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both x and y (max), sorted by x."""
    order = np.lexsort((-y, -x))
    front, best_y = [], -np.inf
    for i in order:
        if y[i] > best_y:
            front.append(i)
            best_y = y[i]
    return np.array(sorted(front, key=lambda i: x[i]), dtype=int)


def pareto_plot(
    src: np.ndarray, tgt: np.ndarray, policies: list[str], path: Path, *, task: str, metric: str
) -> None:
    """Source vs target-mean test score per configuration, coloured by policy, front drawn."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.8, 5.0))
    colors = _colors(policies)
    pol = np.array(policies, dtype=object)
    for p in sorted(set(policies)):
        m = pol == p
        ax.scatter(src[m] * 100, tgt[m] * 100, s=36, alpha=0.8, color=colors[p], label=p)
    front = pareto_front(src, tgt)
    ax.plot(
        src[front] * 100,
        tgt[front] * 100,
        "k-",
        lw=1.2,
        alpha=0.7,
        label=f"Pareto front ({len(front)} configuration{'s' if len(front) != 1 else ''})",
    )
    ax.scatter(src[front] * 100, tgt[front] * 100, s=90, facecolors="none", edgecolors="k")
    ax.set_xlabel(f"source-language test {metric} x 100")
    ax.set_ylabel(f"target-mean test {metric} x 100")
    ax.set_title(f"{task}: source vs target mean per configuration (search stage)")
    ax.grid(alpha=0.3)
    ax.legend(title="policy", fontsize=9, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evp_plot(curves: list[dict[str, Any]], path: Path) -> None:
    """Expected best objective vs number of trials per policy (Dodge et al. 2019), with a
    band of +-1 standard deviation (`fsf.results.summarize.policy_evp`'s curves)."""
    plt = _plt()
    colors = _colors([c["policy"] for c in curves])
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for c in curves:
        n = np.asarray(c["n"], float)
        mean = np.asarray(c["mean"], float) * 100
        std = np.asarray(c["std"], float) * 100
        if not len(n):
            continue
        ax.plot(
            n, mean, "-o", ms=3, color=colors[c["policy"]], label=f"{c['policy']} ({c['trials']})"
        )
        ax.fill_between(n, mean - std, mean + std, color=colors[c["policy"]], alpha=0.15)
    first = curves[0]
    best = "minimum" if first["mode"] == "min" else "maximum"
    ax.set_xscale("log", base=2)
    ax.set_xlabel("trials of the policy's search (n)")
    ax.set_ylabel(f"expected {best} of {first['metric']} x 100")
    ax.set_title(f"{first['task']}: expected best dev objective after n trials (search stage)")
    ax.grid(alpha=0.3)
    ax.legend(title="policy (trials)", fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def trained_trials(study: Any) -> list[Any]:
    """The study's completed trials that were trained: repeats answered from the study
    (user attr `fsf_repeat_of`) are copies of another trial's result, not evidence."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE,)
    return [
        t
        for t in study.get_trials(deepcopy=False, states=states)
        if "fsf_repeat_of" not in t.user_attrs
    ]


#: Below this many trained trials, parameter importances are mostly noise: the report says so.
FEW_TRIALS = 20


def importance_plot(res: Results, path: Path, info: dict[str, Any] | None = None) -> str | None:
    """Optuna parameter importances into `path`; a note (str) when it cannot be made.
    `info`, when given, receives `trials`: how many trained trials they come from."""
    from fsf.results.study import display_url, open_study_storage, readable_study_url

    url = readable_study_url(res.sweep_dir, res.sweep)
    if url is None:
        return (
            "parameter importances: no optuna.db in the sweep folder (for a study in a "
            "database, set FSF_OPTUNA_STORAGE to its URL)"
        )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_study_storage(url)
        names = [s.study_name for s in optuna.study.get_all_study_summaries(storage)]
    except Exception as exc:  # a broken or foreign database
        where = "optuna.db" if url.endswith("/optuna.db") else display_url(url)
        return f"parameter importances: cannot open {where} ({type(exc).__name__}: {exc})"
    name = res.sweep.get("study_name") or res.sweep.get("name")
    if name not in names:
        if len(names) != 1:
            return f"parameter importances: no study named {name!r} in optuna.db ({names})"
        name = names[0]
    study = optuna.load_study(study_name=name, storage=storage)
    done = trained_trials(study)
    if len(done) < 2:
        return (
            f"parameter importances: study {name!r} has {len(done)} trained and completed "
            "trial(s); at least 2 are needed"
        )
    if info is not None:
        info["trials"] = len(done)
    trained = optuna.create_study(directions=study.directions)
    trained.add_trials(done)
    n_obj = len(study.directions)
    labels = study.metric_names or [f"objective {i}" for i in range(n_obj)]
    n_with = {p: sum(p in t.params for t in done) for t in done for p in t.params}
    results = []
    try:
        for i, direction in enumerate(study.directions):
            # the default evaluator (PED-ANOVA, which handles conditional parameters) ranks
            # params by how they achieve *low* target values
            sign = -1.0 if direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
            with warnings.catch_warnings():  # it warns about the orientation handled here
                warnings.simplefilter("ignore", UserWarning)
                imp = optuna.importance.get_param_importances(
                    trained, target=lambda t, i=i, sign=sign: sign * t.values[i]
                )
            results.append((labels[i], {f"{k} (n={n_with[k]})": v for k, v in imp.items()}))
    except (RuntimeError, ValueError) as exc:
        return f"parameter importances: optuna could not compute them ({exc})"
    if not any(imp for _, imp in results):
        return "parameter importances: the study has no varying parameters"
    plt = _plt()
    fig, axes = plt.subplots(
        1,
        n_obj,
        figsize=(6.5 * n_obj, 0.45 * max(len(imp) for _, imp in results) + 2.0),
        squeeze=False,
    )
    for ax, (label, imp), direction in zip(axes[0], results, study.directions, strict=True):
        items = sorted(imp.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
        ax.set_xlabel("importance (normalised, sums to 1)")
        ax.set_title(f"objective: {label} ({direction.name.lower()})")
        ax.grid(axis="x", alpha=0.3)
    few = (
        f"; ONLY {len(done)} TRIALS: ROUGH, a ranking from so few is mostly noise"
        if len(done) < FEW_TRIALS
        else ""
    )
    fig.suptitle(
        f"Optuna parameter importances of the search: {name}\n{len(done)} trained trials; "
        f"n: trials where the parameter applies{few}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
