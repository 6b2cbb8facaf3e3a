"""What a run keeps besides its rows: XTREME prediction files and the fine-tuned checkpoint.

Layout under the run folder (`<output_dir>/<name>/` for fsf-train; in a sweep
`<sweep>/runs/<trial>/seed-<seed>/`):

    predictions/<task>/test-<lang>.tsv     XNLI, PAWS-X (one class name per line), PAN-X /
                                           WikiAnn / tagging (one tag per line, a blank line
                                           between sentences), in test order
    predictions/<task>/test-<lang>.json    MLQA, XQuAD, QA: {question id: answer text}
    predictions/<task>/selection.json      which evaluation the files are of, and its scores
    checkpoint/                            save_pretrained: model (config.json,
                                           model.safetensors) and tokenizer, README.md (a model
                                           card: the fsf config, the selection rule, the
                                           per-language table), fsf_run.yaml (the run config),
                                           fsf_checkpoint.json (step, rule, scores)

`predictions/` is the layout XTREME's `evaluate.py --prediction_folder` reads (one subfolder
per task, `test-<lang>.<tsv|json>`), so a run's folder can be scored by it or combined with
other tasks' for a leaderboard submission. Files are written to a temporary name and renamed,
so a reader never sees half a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fsf.atomic import write_atomic
from fsf.config import RunConfig
from fsf.results.evaluation import Evaluation
from fsf.results.selection import checkpoint_text
from fsf.tasks import Task

__all__ = [
    "FSF_LICENSE",
    "auto_model_class",
    "model_card",
    "model_license",
    "selection_text",
    "write_artifacts",
]


def selection_text(config: RunConfig, ev: Evaluation) -> str:
    """One sentence: which evaluation was selected, and by what rule."""
    at = f"step {ev.step} of {ev.total_steps} (epoch {ev.epoch:.2f})"
    if config.selection != "final":
        return f"{at}: {checkpoint_text(config.selection, ev.source_lang, ev.metric)}"
    why = "checkpoint.save: final" if config.checkpoint.save == "final" else "no dev split"
    return f"{at}: the final step ({why})"


def _scores(ev: Evaluation) -> dict[str, Any]:
    return {
        "step": ev.step,
        "total_steps": ev.total_steps,
        "epoch": ev.epoch,
        "metric": ev.metric,
        "source_lang": ev.source_lang,
        "target_langs": list(ev.target_langs),
        "scores": ev.scores,
    }


def write_artifacts(
    root: Path,
    config: RunConfig,
    task: Task,
    ev: Evaluation,
    test_predictions: dict[str, list[Any]],
    test_features: dict[str, list[dict[str, Any]]],
    model: Any | None,
    tokenizer: Any,
) -> dict[str, str]:
    """Write the prediction files (with `eval.predictions`) and the checkpoint (`model`, when
    given) of the selected evaluation `ev`; returns {"predictions": dir, "checkpoint": dir}
    for what was written."""
    out: dict[str, str] = {}
    rule = {"rule": config.selection, "selected": selection_text(config, ev), **_scores(ev)}
    if config.eval.predictions:
        folder = root / "predictions" / task.name
        for lang, preds in test_predictions.items():
            text = task.prediction_text(preds, test_features[lang])
            write_atomic(folder / f"test-{lang}.{task.prediction_suffix}", text)
        write_atomic(folder / "selection.json", json.dumps(rule, indent=2, allow_nan=True))
        out["predictions"] = str(folder.parent)
    if model is not None:
        folder = root / "checkpoint"
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        run = config.model_dump(mode="json")
        write_atomic(folder / "fsf_run.yaml", yaml.safe_dump(run, sort_keys=False))
        write_atomic(folder / "fsf_checkpoint.json", json.dumps(rule, indent=2, allow_nan=True))
        write_atomic(folder / "README.md", model_card(config, task, ev))
        out["checkpoint"] = str(folder)
    return out


def _fmt(x: float) -> str:
    return "-" if x != x else f"{100 * x:.2f}"  # NaN -> "-"


def auto_model_class(task: Task) -> str:
    """The `transformers` Auto class that loads the task's checkpoint."""
    from fsf.tasks import ClassificationTask, QATask, TaggingTask

    if isinstance(task, ClassificationTask):
        return "AutoModelForSequenceClassification"
    if isinstance(task, TaggingTask):
        return "AutoModelForTokenClassification"
    if isinstance(task, QATask):
        return "AutoModelForQuestionAnswering"
    return "AutoModel"


#: The Hub's task type of each fsf task family (model-index `task.type`).
_TASK_TYPES = {
    "AutoModelForSequenceClassification": "text-classification",
    "AutoModelForTokenClassification": "token-classification",
    "AutoModelForQuestionAnswering": "question-answering",
}
#: The licence of the embedded encoder (`model.name: synthetic`): fsf's own.
FSF_LICENSE = "apache-2.0"


def model_license(config: RunConfig) -> tuple[str, str | None]:
    """(licence id, licence name or None) of the fine-tuned model: `checkpoint.license`,
    else the base model's as its model card states it (a local folder's README.md, or the
    Hub's card in the local cache; nothing is downloaded), else ("other", "unknown")."""
    if config.checkpoint.license:
        return config.checkpoint.license, None
    name = config.model.name
    if name == "synthetic":
        return FSF_LICENSE, None
    readme: Path | None = Path(name) / "README.md"  # a local model folder's own card
    if readme is not None and not readme.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "README.md")
            readme = Path(cached) if isinstance(cached, str) else None
        except Exception:  # not a Hub id, no cache: the licence is unknown
            readme = None
    if readme is not None and readme.is_file():
        from huggingface_hub import ModelCard

        try:
            data = ModelCard.load(readme).data
        except Exception:  # a card that does not parse: as if there were none
            data = None
        if data is not None and data.license:
            license_name = data.get("license_name") if data.license == "other" else None
            return str(data.license), license_name
    return "other", "unknown"


def model_card(config: RunConfig, task: Task, ev: Evaluation) -> str:
    """A Hugging Face model card (`huggingface_hub.ModelCard`): front matter with the
    licence (`model_license`) and a `model-index` of every score of the saved step (one
    result per split and language), how it was trained and selected, the per-language
    table, how to load it, the fsf run config."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    langs = [ev.source_lang, *ev.target_langs]
    auto = auto_model_class(task)
    local_data = task.dataset is not None and (Path(task.dataset).exists() or ":" in task.dataset)
    dataset = task.name if local_data or not task.dataset else task.dataset
    results = [
        EvalResult(
            task_type=_TASK_TYPES.get(auto, "other"),
            task_name=task.name,
            dataset_type=dataset,
            dataset_name=f"{dataset} ({lang})",
            dataset_config=lang,
            dataset_split=split,
            metric_type=ev.metric,
            metric_name=f"{ev.metric} ({lang}, {split}{', source' if lang == ev.source_lang else ''})",
            metric_value=float(ev.score(split, lang)),
        )
        for split in ("dev", "test")
        if split in ev.scores
        for lang in langs
        if ev.score(split, lang) == ev.score(split, lang)  # NaN: not measured, not a result
    ]
    license_id, license_name = model_license(config)
    data = ModelCardData(
        model_name=config.name,
        library_name="transformers",
        language=langs,
        license=license_id,
        license_name=license_name,
        tags=["fsf", "cross-lingual-transfer", task.name, f"policy-{config.policy.name}"],
        base_model=None
        if Path(config.model.name).exists() or config.model.name == "synthetic"
        else config.model.name,
        datasets=None if local_data or not task.dataset else [task.dataset],
        metrics=[ev.metric],
        eval_results=results or None,
    )
    splits = [s for s in ("dev", "test") if s in ev.scores]
    rows = [
        f"| {lang}{' (source)' if lang == ev.source_lang else ''} | "
        + " | ".join(_fmt(ev.score(s, lang)) for s in splits)
        + " |"
        for lang in langs
    ]
    rows.append("| target mean | " + " | ".join(_fmt(ev.target_mean(s)) for s in splits) + " |")
    few_shot = f" (few-shot: {config.few_shot.m} examples per target)" if config.few_shot.m else ""
    licence = (
        f"`{license_id}`"
        if license_name is None
        else f"`{license_id}` (`{license_name}`: the base model's licence could not be read "
        "offline; it applies to this model too: set `checkpoint.license` to state it)"
    )
    body = f"""# {config.name}: {config.model.name} fine-tuned on {task.name} with fsf

Fine-tuned by fsf (Fine-tuning Slow and Fast, Guo et al., ACL 2023) on
the source language `{ev.source_lang}` of `{task.dataset}` (task `{task.name}`), with the
learning-rate policy `{config.policy.name}`, seed {config.seed}; zero-shot on the targets
{", ".join(f"`{t}`" for t in ev.target_langs)}{few_shot}.
Licence: {licence}.

## Which checkpoint this is

{selection_text(config, ev)}.

## Scores of this checkpoint ({ev.metric}, %)

| language | {" | ".join(splits)} |
|---|{"---|" * len(splits)}
{chr(10).join(rows)}

The `model-index` above holds the same scores as fractions (one result per split and
language).

## Loading it

```python
from transformers import AutoTokenizer, {auto}

tokenizer = AutoTokenizer.from_pretrained("PATH")
model = {auto}.from_pretrained("PATH")
```

## The fsf run config

```yaml
{yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).rstrip()}
```
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    return str(card)
