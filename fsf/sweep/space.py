"""Search spaces: YAML -> a typed, validated `SweepSpec` -> an Optuna define-by-run function.

A space file has a `base` run config (any `fsf-train` config) and a `search` section:

    name: policies
    base: {model: {name: synthetic}, optim: {max_steps: 300}, ...}
    search:
      parameters:
        policy.name: {type: categorical, values: [df, fs, ff, fsf]}
        policy.c1: {type: float, low: 0.001, high: 0.5, log: true,
                    when: {policy.name: [fs, fsf]}}
      objective: [{metric: dev_target_mean, mode: max}]
      searcher: tpe
      scheduler: {type: asha, grace_period: 100, reduction_factor: 2}
      num_trials: 16
      max_concurrent: 2
      resources: {cpus: 1, gpus: 0, workers: 1}
      seeds: [0]
    storage: {path: fsf-runs}

Parameters are sampled in the order they are written; a `when` condition may only name a
parameter written before it, so the define-by-run function can decide as it goes.
`validate_space` reports every problem of a file at once, each with its path in the file.

The models a file validates into (`SweepSpec` and its sections) are `fsf.sweep.spec`, and
what one point of a space is (the define-by-run function, the grid, each trial's run config)
is `fsf.sweep.points`; here are reading and validating a file, the check of the model and
data a space names, and the command line's overrides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fsf.config import RunConfig, apply_overrides, parse_overrides, validate_run_config
from fsf.errors import ConfigError, Problem, problems_from_pydantic, short_repr
from fsf.sweep._checks import check_semantics
from fsf.sweep.points import RESOURCE_KEYS, complete_point, conditions_of, trial_run_config
from fsf.sweep.spec import LOGGERS, SweepSpec
from fsf.yamlfile import load_yaml, read_yaml

__all__ = [
    "check_resources",
    "load_space",
    "load_space_with",
    "missing_logger_packages",
    "validate_space",
    "with_overrides",
]


def missing_logger_packages(spec: SweepSpec) -> list[str]:
    """One line per logger of the space whose package is not installed (checked when a
    sweep starts, not when a space is read: reading a sweep's results needs none)."""
    import importlib.util

    return [
        f"loggers: {name!r} needs the {LOGGERS[name]} package: pip install 'fsf[{name}]'"
        for name in spec.loggers
        if importlib.util.find_spec(LOGGERS[name]) is None
    ]


#: Search parameters whose values change what `check_resources` looks at.
_RESOURCE_PREFIXES = (
    "model.",
    "task.",
    "source_lang",
    "target_langs",
    "policy.sets",
    "probe.",
    "few_shot.",
    "eval.splits",
)


def check_resources(spec: SweepSpec, limit: int = 32) -> list[Problem]:
    """Problems of the model and data a sweep names, found without training
    (`fsf.train.check.check_run`): the base config, and the base with each value of the
    parameters that change the model, the task, the languages or the layer ranges (at most
    `limit` configs). A problem only some values have is reported under that parameter."""
    from fsf.train.check import check_run

    params = spec.search.parameters
    configs: list[tuple[str | None, Any, RunConfig]] = [(None, None, spec.base_config())]
    for key, p in params.items():
        if not p.apply or key in RESOURCE_KEYS or not key.startswith(_RESOURCE_PREFIXES):
            continue
        for value in (p.values if p.type == "categorical" else [p.low, p.high]) or []:
            point = complete_point(params, {**conditions_of(params, key), key: value})
            try:
                configs.append((key, value, trial_run_config(spec, point, 0, "check")))
            except ConfigError:
                continue  # reported by validate_space
    problems: list[Problem] = []
    seen: set[str] = set()
    base_problems: set[str] = set()
    for changed, value, config in configs[:limit]:
        for prob in check_run(config, prefix="base"):
            if changed is None:
                base_problems.add(str(prob))
            elif str(prob) in base_problems:
                continue
            else:
                prob = Problem(
                    f"search.parameters.{changed}",
                    f"value {short_repr(value)}: {prob}",
                )
            if str(prob) not in seen:
                seen.add(str(prob))
                problems.append(prob)
    return problems


#: Command-line flags of `fsf-sweep` and the space keys they set.
FLAGS = {
    "name": "--name",
    "storage.path": "--storage-path",
    "search.num_trials": "--num-trials",
    "search.max_concurrent": "--max-concurrent",
}


def with_overrides(
    spec: SweepSpec,
    *,
    name: str | None = None,
    storage_path: str | None = None,
    num_trials: int | None = None,
    max_concurrent: int | None = None,
) -> SweepSpec:
    """`spec` with the command line's values set, each validated exactly as the same key in
    a space file; a bad one is a ConfigError naming its flag (`--name ../x` is refused like
    `name: ../x`)."""
    values = dict(zip(FLAGS, (name, storage_path, num_trials, max_concurrent), strict=True))
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return spec
    data = apply_overrides(spec.model_dump(mode="json"), list(values.items()))
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for prob in problems_from_pydantic(exc):
            flag = next((f for k, f in FLAGS.items() if prob.path == k), None)
            problems.append(Problem(flag or prob.path, prob.message, prob.value, prob.has_value))
        raise ConfigError(problems) from None


#: Run-config keys that may name a local folder or file (or a `{lang}`/`{split}` template).
_PATH_KEYS = (
    ("model", "name"),
    ("model", "tokenizer"),
    ("task", "dataset"),
    ("task", "train_dataset"),
)


def _local(value: str) -> bool:
    """Whether `value` names something on this machine, relative to the working folder: a
    folder or file that exists, or a template whose fixed part's folder exists."""
    if "://" in value or value.startswith("synthetic"):
        return False
    fixed = value.split("{", 1)[0]
    if fixed != value:
        return Path(fixed if fixed.endswith("/") else os.path.dirname(fixed) or ".").is_dir()
    return Path(value).exists()


def absolute_local_paths(base: dict[str, Any]) -> dict[str, Any]:
    """`base` with relative local paths made absolute (against the working folder).

    Ray Tune runs each trial in its own folder, so `model.name: fsf-real/encoder` or
    `task.dataset: data/{lang}/{split}.jsonl` must be resolved where the sweep starts; a hub
    name (no such local path) is left as it is."""
    out = dict(base)
    for section, key in _PATH_KEYS:
        part = out.get(section)
        if not isinstance(part, dict):
            continue
        value = part.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value) and _local(value):
            out[section] = {**part, key: os.path.abspath(value)}
    return out


def validate_space(data: Any, source: str | None = None) -> SweepSpec:
    """Build a SweepSpec from parsed YAML, raising one ConfigError listing every problem.
    Relative local paths in the base are made absolute (`absolute_local_paths`)."""
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem("", "a space file is a mapping with base/search/storage", data, True)], source
        )
    if isinstance(data.get("base"), dict):
        data = {**data, "base": absolute_local_paths(data["base"])}
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_pydantic(exc)
        # still check the base run config, so its problems are listed too
        base = data.get("base", {})
        if isinstance(base, dict) and not any(p.path.startswith("base") for p in problems):
            try:
                validate_run_config(base, prefix="base")
            except ConfigError as inner:
                problems += inner.problems
        raise ConfigError(problems, source) from None
    problems = check_semantics(spec)
    if problems:
        raise ConfigError(problems, source)
    return spec


def load_space(path: str | Path) -> SweepSpec:
    """Read and validate a space file (a local path, or a URI such as a sweep's
    s3://.../space.yaml)."""
    if isinstance(path, str) and "://" in path:
        from fsf.results.storage import location
        from fsf.text import InputTooLarge, read_limited
        from fsf.yamlfile import YamlLimits

        try:
            text = read_limited(location(path), YamlLimits.max_bytes, path).decode("utf-8")
        except InputTooLarge as exc:
            raise ConfigError([Problem("", exc.reason)], path) from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ConfigError([Problem("", f"cannot read file: {exc}")], path) from None
        return validate_space(load_yaml(text, path), path)
    return validate_space(read_yaml(path), str(path))


def load_space_with(path: str, base: str | None, sets: list[str] | None = None) -> SweepSpec:
    """The space at `path`, with the run config in `base` (a YAML file) merged into its base,
    then the `--set KEY=VALUE` items set on it; validated like the YAML (what `fsf-sweep run
    --space PATH --base FILE --set ...` runs). Without `base` and `sets`: `load_space(path)`."""
    if base is None and not sets:
        return load_space(path)
    overrides = parse_overrides(sets or [])  # a malformed item fails before any file is read
    data = read_yaml(path)
    if not isinstance(data, dict):
        return validate_space(data, path)
    source = path
    if base is not None:
        extra = read_yaml(base)
        if not isinstance(extra, dict):
            raise ConfigError(
                [Problem("", "expected a mapping of run settings", extra, True)], base
            )

        def leaves(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
            out: list[tuple[str, Any]] = []
            for k, v in d.items():
                key = f"{prefix}{k}"
                out += leaves(v, f"{key}.") if isinstance(v, dict) and v else [(key, v)]
            return out

        data["base"] = apply_overrides(data.get("base") or {}, leaves(extra))
        source = f"{path} + {base}"
    if overrides:
        if not isinstance(data.get("base", {}), dict):
            return validate_space(data, source)
        data["base"] = apply_overrides(data.get("base") or {}, overrides)
        source += " + --set " + " ".join(sets or [])
    return validate_space(data, source)
