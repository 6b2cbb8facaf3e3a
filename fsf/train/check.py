"""What can be checked about a run config without training: the model and data it names.

`check_run(config)` lists the problems a run would only meet once it started (in every trial
of a sweep): a model folder that does not exist or has no `config.json`, layer ranges
(`policy.sets`, `probe.layer`) beyond the model's depth as its `config.json` declares it,
languages the dataset has no config for, split names the dataset does not have, a data
file a template names that is not there, a `deepspeed.extra` DeepSpeed's parser refuses. It reads small files only (`config.json`, a
dataset's README and folder listing), never weights or examples.

What it cannot see is left to the run: hub models not in the local cache and hub datasets
(nothing is downloaded here), the contents of data files, architectures whose depth is not
in `config.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from fsf.config import RunConfig
from fsf.errors import ConfigError, Problem, clip
from fsf.policies.weight_sets import MAX_LAYERS
from fsf.text import InputTooLarge, read_limited

__all__ = ["check_run", "model_depth"]

_DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
#: The largest config.json read (a model's is a few kB, with a big label map a few hundred).
CONFIG_JSON_BYTES = 10 * 2**20


def _looks_local(name: str) -> bool:
    """A name that can only be a local path (a hub id is `name` or `org/name`)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def _hub_config(name: str) -> Path | None:
    """config.json of a hub model in the local cache, if there is one (no download)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # a malformed repo id, no cache
        return None
    return Path(found) if isinstance(found, str) else None


def model_depth(name: str, path: str = "model.name") -> tuple[int | None, list[Problem]]:
    """(number of layers from config.json or None, problems) for a model name or folder."""
    from fsf.train.model_path import resolve_model_path

    resolved = resolve_model_path(name)
    folder = Path(resolved).expanduser()
    config_file: Path | None = None
    if folder.is_dir():
        config_file = folder / "config.json"
        if not config_file.is_file():
            return None, [
                Problem(
                    path, "the folder has no config.json (not a save_pretrained folder)", name, True
                )
            ]
    elif folder.exists():
        return None, [Problem(path, "is a file; give a model folder or a hub name", name, True)]
    elif _looks_local(resolved):
        return None, [Problem(path, "no such model folder", name, True)]
    else:
        config_file = _hub_config(resolved)
        if config_file is None:
            return None, []  # a hub model not cached here: only the run can tell
    try:
        data = json.loads(read_limited(config_file, CONFIG_JSON_BYTES, str(config_file)))
    except InputTooLarge as exc:
        return None, [Problem(path, f"its config.json is {exc.reason}", name, True)]
    except (OSError, ValueError) as exc:
        return None, [Problem(path, f"unreadable config.json ({clip(str(exc), 200)})", name, True)]
    for key in _DEPTH_KEYS:
        if isinstance(data, dict) and isinstance(data.get(key), int) and data[key] > 0:
            if data[key] > MAX_LAYERS:
                return None, [
                    Problem(
                        path,
                        f"its config.json declares {key}={data[key]}; fsf maps at most "
                        f"{MAX_LAYERS} layers",
                        name,
                        True,
                    )
                ]
            return int(data[key]), []
    return None, []


def _depth_problems(config: RunConfig, depth: int, prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    try:
        config.policy.sets.resolve(depth, prefix=f"{prefix}policy.sets")
    except ConfigError as exc:
        problems += exc.problems
    layer = config.probe.layer
    if config.probe.action != "none" and layer is not None and layer > depth:
        problems.append(
            Problem(
                f"{prefix}probe.layer",
                f"the model has {depth} layers (1..{depth})",
                layer,
                True,
            )
        )
    return problems


def _splits_needed(config: RunConfig) -> dict[str, list[str]]:
    """fsf split -> the languages read from it."""
    needed: dict[str, list[str]] = {"train": [config.source_lang]}
    for split in config.eval.splits:
        needed[split] = list(config.languages)
    if config.few_shot.m:
        needed.setdefault("dev", list(config.languages))
    return needed


def _data_problems(config: RunConfig, prefix: str) -> list[Problem]:
    from fsf.tasks import build_task
    from fsf.tasks.data import resolve_dataset

    try:
        task = build_task(config.task, config.model)
    except ConfigError as exc:
        return [Problem(f"{prefix}{p.path}", p.message, p.value, p.has_value) for p in exc.problems]
    problems: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    cache: dict = {}  # what `datasets` said of each folder and config
    for split, langs in _splits_needed(config).items():
        dataset, template = task.source(split)
        # split is one of TaskConfig's SplitName keys (from _splits_needed), typed as str there
        name = config.task.splits.get(split, split)  # type: ignore[call-overload]
        try:
            resolved = resolve_dataset(dataset)
        except Exception as exc:
            problems.append(Problem(f"{prefix}task.dataset", str(exc), dataset, True))
            continue
        which = "task.train_dataset" if dataset != task.dataset else "task.dataset"
        for lang in langs:
            if (resolved, lang, name) in seen:
                continue
            seen.add((resolved, lang, name))
            if "{lang}" in resolved or "{split}" in resolved:
                path = Path(resolved.format(lang=lang, split=name))
                if not path.is_file():
                    problems.append(
                        Problem(
                            f"{prefix}{which}",
                            f"no data file for language {lang!r}, split {name!r}: {path} does "
                            "not exist",
                            dataset,
                            True,
                        )
                    )
                continue
            folder = Path(resolved)
            if folder.is_file():
                break  # one file holds every language and split
            if not folder.is_dir():
                if _looks_local(resolved):
                    problems.append(Problem(f"{prefix}{which}", "no such folder", dataset, True))
                    break
                continue  # a hub dataset: the run will tell
            found = _folder_problems(
                folder, dataset, template, lang, split, name, which, prefix, cache
            )
            problems += found
            if any(p.path.endswith(f"task.splits.{split}") for p in found):
                break  # a split name missing in one config: said once
    return problems


def _config_names(folder: str, cache: dict) -> list[str] | None:
    """The configs of a local dataset folder, None if `datasets` cannot read them; asked of
    `datasets` once per check (a space may name hundreds of languages, and `datasets` parses
    the folder's card on every call)."""
    if ("configs", folder) not in cache:
        import datasets

        datasets.logging.set_verbosity_error()
        try:
            cache["configs", folder] = list(datasets.get_dataset_config_names(folder))
        except Exception:
            cache["configs", folder] = None
    return cache["configs", folder]


def _split_names(folder: str, config_name: str | None, cache: dict) -> list[str] | None:
    """The splits of one config of a local dataset folder (asked once per check), None if
    unreadable."""
    if ("splits", folder, config_name) not in cache:
        import datasets

        try:
            found = list(datasets.get_dataset_split_names(folder, config_name))
        except Exception:
            found = None
        cache["splits", folder, config_name] = found
    return cache["splits", folder, config_name]


def _folder_problems(
    folder: Path,
    dataset: str,
    template: str | None,
    lang: str,
    split: str,
    name: str,
    which: str,
    prefix: str,
    cache: dict,
) -> list[Problem]:
    """A local folder in the hub layout: the language's config, and the split in it."""
    config_name = template.format(lang=lang) if template else None
    configs = _config_names(str(folder), cache)
    if configs is None:
        return []  # a layout `datasets` reads in its own way: the run will tell
    where = "target_langs" if split != "train" else "source_lang"
    declared = configs and configs != ["default"]
    if config_name is not None and declared and config_name not in configs:
        shown = ", ".join(configs[:20]) + (", ..." if len(configs) > 20 else "")
        return [
            Problem(
                f"{prefix}{where}",
                f"{dataset} has no config {config_name!r} for language {lang!r} (it has: "
                f"{shown}); check the languages and task.config_name",
                lang,
                True,
            )
        ]
    splits = _split_names(str(folder), config_name, cache)
    if splits is None:
        return []
    if splits and name not in splits:
        return [
            Problem(
                f"{prefix}task.splits.{split}",
                f"{dataset} ({config_name or 'default'}) has no split {name!r} (it has: "
                f"{', '.join(splits)})",
                name,
                True,
            )
        ]
    return []


def check_run(config: RunConfig, prefix: str = "") -> list[Problem]:
    """Problems of `config` that need no training to find (see the module doc); each names
    the config key (under `prefix`, e.g. 'base.') and the value."""
    prefix = f"{prefix}." if prefix and not prefix.endswith(".") else prefix
    depth, problems = model_depth(config.model.name, f"{prefix}model.name")
    if config.model.tokenizer is not None:
        tok = Path(config.model.tokenizer).expanduser()
        if not tok.exists() and _looks_local(config.model.tokenizer):
            problems.append(
                Problem(f"{prefix}model.tokenizer", "no such folder", config.model.tokenizer, True)
            )
    if depth is not None:
        problems += _depth_problems(config, depth, prefix)
    problems += _data_problems(config, prefix)
    if config.engine == "deepspeed" and config.deepspeed.extra:
        import torch

        from fsf.train._engine import ds_config_problem

        problem = ds_config_problem(config, cuda=torch.cuda.is_available())
        if problem:
            problems.append(Problem(f"{prefix}deepspeed.extra", problem))
    return problems
