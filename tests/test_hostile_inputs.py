"""Hostile input through the console scripts: every case exits 2 with a short message whose
one line names the field (or flag) and the value received; never a traceback, never a write
outside the folders the command names, never a process killed by a memory bomb.

The cases run in-process through each script's `main` (what the console script calls), except
the memory bombs, which run as real subprocesses under a memory limit (a regression there must
fail the test, not take the test process with it): the alias bombs one process each, the
inputs that are devices or huge files (`/dev/zero`, a 3 GB sparse file) all in one process.
Beyond the command lines: every number field of every config model refuses inf, nan and
2**70 (walked from the models, so a new field is covered); a pickled model file is one line;
control characters from result data reach no terminal, CSV or report unescaped."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.results.helpers import ev2, run, write

#: A valid space on the embedded benchmark; each case changes one thing in it.
BASE_SPACE = {
    "name": "hostile",
    "base": {"optim": {"max_steps": 2}, "eval": {"every_steps": 2}},
    "search": {
        "parameters": {"policy.name": {"type": "categorical", "values": ["df", "fsf"]}},
        "num_trials": 2,
    },
}


def _bomb(levels: int = 9, width: int = 9) -> str:
    """A YAML "billion laughs": `width ** levels` values from a few hundred bytes."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines)


@dataclass
class Case:
    """`argv` of `cli` (`{space}`, `{tmp}`, `{results}` are filled in); `space` is YAML text
    written to {space} (a dict: merged into BASE_SPACE); `expect`: strings that one line of
    stderr must all contain."""

    id: str
    cli: str
    argv: list[str]
    expect: list[str]
    space: str | dict | None = None
    subprocess: bool = False
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def _space(**changes: object) -> dict:
    out = yaml.safe_load(yaml.safe_dump(BASE_SPACE))
    for dotted, value in changes.items():
        node = out
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


VALIDATE = ["validate", "--space", "{space}"]
RUN = ["--space", "{space}", "--no-progress"]

CASES = [
    # ----------------------------------------------------------- names that escape a folder
    Case("space-name-dotdot-slash", "sweep", VALIDATE, ["name:", "'../x'"], _space(name="../x")),
    Case("space-name-slash-space", "sweep", VALIDATE, ["name:", "'a/b c'"], _space(name="a/b c")),
    Case("space-name-dotdot", "sweep", VALIDATE, ["name:", "'..'"], _space(name="..")),
    Case("space-name-dot", "sweep", VALIDATE, ["name:", "'.'"], _space(name=".")),
    Case("space-name-hidden", "sweep", VALIDATE, ["name:", "'.x'"], _space(name=".x")),
    Case("space-name-too-long", "sweep", VALIDATE, ["name:", "xxxx"], _space(name="x" * 300)),
    Case("space-name-absolute", "sweep", VALIDATE, ["name:", "'/etc'"], _space(name="/etc")),
    Case("flag-name-dotdot", "sweep", [*RUN, "--name", "../x"], ["--name", "'../x'"], {}),
    Case("flag-name-slash", "sweep", [*RUN, "--name", "a/b c"], ["--name", "'a/b c'"], {}),
    Case("flag-name-nul", "sweep", [*RUN, "--name", "a\x01b"], ["--name", "'a\\x01b'"], {}),
    Case(
        "train-name-escapes",
        "train",
        ["--set", "name=../../x", "--set", "output_dir={tmp}/out"],
        ["name:", "'../../x'"],
    ),
    Case("train-name-dotdot", "train", ["--set", "name=.."], ["name:", "'..'"]),
    # ----------------------------------------------------------- YAML that is not a config
    Case(
        "duplicate-top-key",
        "sweep",
        VALIDATE,
        ["line 2", "'name'", "twice"],
        "name: a\nname: b\n",
    ),
    Case(
        "duplicate-nested-key",
        "sweep",
        VALIDATE,
        ["line 4", "'lr'", "twice"],
        "base:\n  optim:\n    lr: 0.1\n    lr: 0.2\n",
    ),
    Case(
        "duplicate-key-in-set",
        "train",
        ["--set", "policy={name: fsf, name: df}"],
        ["--set policy", "'name'", "twice"],
    ),
    Case(
        "duplicate-key-in-config",
        "train",
        ["--config", "{tmp}/run.yaml"],
        ["run.yaml", "'seed'", "twice"],
        files={"run.yaml": "seed: 1\nseed: 2\n"},
    ),
    Case(
        "alias-bomb-unknown-key",
        "sweep",
        VALIDATE,
        ["alias bomb"],
        _bomb() + "\nname: ok\n",
        subprocess=True,
    ),
    Case(
        "alias-bomb-categorical",
        "sweep",
        VALIDATE,
        ["alias bomb"],
        _bomb() + "\nsearch:\n  parameters:\n    policy.name: {type: categorical, values: *l8}\n",
        subprocess=True,
    ),
    Case("recursive-alias", "sweep", VALIDATE, ["recursive"], "base: &b {x: [*b]}\n"),
    Case("nested-too-deep", "sweep", VALIDATE, ["nested more than"], "a: " + "[" * 200 + "]" * 200),
    Case(
        "python-tag-not-run",
        "sweep",
        VALIDATE,
        ["not valid YAML", "python/object/apply:os.system"],
        "name: !!python/object/apply:os.system ['touch {tmp}/pwned']\n",
    ),
    Case("not-yaml", "sweep", VALIDATE, ["not valid YAML", "line 2"], "name: [a, b\n"),
    Case("yaml-list", "sweep", VALIDATE, ["a space file is a mapping", "[1, 2]"], "[1, 2]\n"),
    Case("missing-file", "sweep", ["validate", "--space", "{tmp}/nope.yaml"], ["cannot read"]),
    Case(
        "huge-unknown-value",
        "sweep",
        VALIDATE,
        ["zzz: unknown key", "yyy...yyy"],
        _space(zzz="y" * 100_000),
    ),
    # ----------------------------------------------------------- values out of range
    Case("lr-negative", "sweep", VALIDATE, ["base.optim.lr", "-1"], _space(base__optim__lr=-1)),
    Case(
        "lr-string", "sweep", VALIDATE, ["base.optim.lr", "'fast'"], _space(base__optim__lr="fast")
    ),
    Case(
        "num-trials-zero",
        "sweep",
        VALIDATE,
        ["search.num_trials", "0"],
        _space(search__num_trials=0),
    ),
    Case(
        "unknown-searcher",
        "sweep",
        VALIDATE,
        ["search.searcher", "'bogus'"],
        _space(search__searcher="bogus"),
    ),
    Case(
        "unknown-policy",
        "sweep",
        VALIDATE,
        ["base.policy.name", "'nope'"],
        _space(base__policy={"name": "nope"}),
    ),
    Case(
        "storage-scheme",
        "sweep",
        VALIDATE,
        ["storage.path", "'ftp://h/x'"],
        _space(storage={"path": "ftp://h/x"}),
    ),
    Case(
        "grid-too-large",
        "sweep",
        VALIDATE,
        ["search.parameters", "10,000 points"],
        _space(
            search={
                "searcher": "grid",
                "parameters": {
                    "policy.c1": {"type": "categorical", "values": [i / 100 for i in range(1, 21)]},
                    "policy.c2": {"type": "categorical", "values": list(range(2, 22))},
                    "policy.r": {"type": "categorical", "values": list(range(1, 21))},
                    "policy.window": {"type": "categorical", "values": list(range(1, 21))},
                    "policy.threshold": {
                        "type": "categorical",
                        "values": [i / 100 for i in range(20)],
                    },
                    "policy.noise_lambda": {
                        "type": "categorical",
                        "values": [i / 10 for i in range(20)],
                    },
                    "optim.lr": {"type": "categorical", "values": [i * 1e-4 for i in range(1, 21)]},
                    "seed": {"type": "categorical", "values": list(range(20))},
                },
            }
        ),
    ),
    Case(
        "empty-categorical",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.name.values", "[]"],
        _space(search__parameters={"policy.name": {"type": "categorical", "values": []}}),
    ),
    Case(
        "unknown-objective",
        "sweep",
        VALIDATE,
        ["search.objective[0].metric", "'accuracy_please'"],
        _space(search__objective={"metric": "accuracy_please"}),
    ),
    Case(
        "source-in-targets",
        "sweep",
        VALIDATE,
        ["base", "source language 'en'"],
        _space(base__target_langs=["en", "fr"]),
    ),
    # ----------------------------------------------------------- model and data (validate)
    Case(
        "model-missing",
        "sweep",
        VALIDATE,
        ["base.model.name", "'/nonexistent/model'"],
        _space(base__model={"name": "/nonexistent/model"}),
    ),
    Case(
        "layers-beyond-depth",
        "sweep",
        VALIDATE,
        ["base.policy.sets.s1", "'1-99'"],
        _space(base__policy={"sets": {"s1": "1-99"}}),
    ),
    Case(
        "language-not-in-dataset",
        "sweep",
        VALIDATE,
        ["base.target_langs", "'zz'"],
        _space(base__target_langs=["zz"]),
    ),
    Case(
        "split-not-in-dataset",
        "sweep",
        VALIDATE,
        ["base.task.splits.dev", "'dev-please'"],
        _space(
            base__task={
                "name": "classification",
                "dataset": "synthetic:topic",
                "text_fields": ["text"],
                "num_labels": 4,
                "splits": {"train": "train", "dev": "dev-please", "test": "test"},
            }
        ),
    ),
    # ----------------------------------------------------------- flags and folders
    Case(
        "flag-storage-scheme",
        "sweep",
        [*RUN, "--storage-path", "ftp://h/x"],
        ["--storage-path", "'ftp://h/x'"],
        {},
    ),
    Case(
        "object-store-no-study",
        "sweep",
        [*RUN, "--storage-path", "s3://no-such-bucket/x"],
        ["s3://no-such-bucket/x", "storage.optuna"],
        {},
    ),
    Case("flag-num-trials", "sweep", [*RUN, "--num-trials", "0"], ["--num-trials", "0"], {}),
    Case(
        "flag-max-concurrent",
        "sweep",
        [*RUN, "--max-concurrent", "-1"],
        ["--max-concurrent", "-1"],
        {},
    ),
    Case("resume-not-a-sweep", "sweep", ["resume", "{tmp}"], ["not a sweep folder", "{tmp}"]),
    Case("resume-bad-uri", "sweep", ["resume", "ftp://h/x"], ["resume", "'ftp://h/x'"]),
    Case("confirm-not-a-sweep", "sweep", ["confirm", "{tmp}"], ["not a sweep folder", "{tmp}"]),
    Case("confirm-bad-uri", "sweep", ["confirm", "ftp://h/x"], ["confirm", "'ftp://h/x'"]),
    Case(
        "best-no-folder",
        "sweep",
        ["best", "--sweep", "{tmp}/nope", "--per-language"],
        ["no such folder", "{tmp}/nope"],
    ),
    Case(
        "best-unknown-language",
        "sweep",
        ["best", "--sweep", "{results}", "--lang", "xx"],
        ["'xx'"],
    ),
    Case(
        "best-bad-format",
        "sweep",
        ["best", "--sweep", "{results}", "--per-language", "--format", "yaml"],
        ["--format", "'yaml'"],
    ),
    Case(
        "report-out-uri",
        "sweep",
        ["report", "{results}", "--out", "s3://b/r"],
        ["--out", "s3://b/r"],
    ),
    Case("train-lr-string", "train", ["--set", "optim.lr=abc"], ["optim.lr", "'abc'"]),
    Case("train-set-no-equals", "train", ["--set", "noequals"], ["--set", "'noequals'"]),
    Case(
        "train-config-missing",
        "train",
        ["--config", "{tmp}/none.yaml"],
        ["none.yaml", "cannot read"],
    ),
    Case(
        "policy-unknown",
        "policy",
        ["explain", "--policy", "bogus", "--layers", "12", "--steps", "10"],
        ["policy.name", "'bogus'"],
    ),
    Case(
        "policy-layers-zero",
        "policy",
        ["explain", "--policy", "fsf", "--layers", "0", "--steps", "10"],
        ["--layers", "0"],
    ),
]


# ============================================================== reliability round 3 (issue 28)


def _param(**p: object) -> dict:
    """A space whose one searched parameter is `p` (on policy.c2 unless p names another)."""
    key = str(p.pop("key", "policy.c2"))
    return _space(search__parameters={key: p})


def _when_cycle(*keys: str) -> dict:
    """Parameters each of whose `when` names the next (the last names the first)."""
    return _space(
        search__parameters={
            k: {"type": "categorical", "values": [0.1, 0.2], "when": {nxt: [0.1]}}
            for k, nxt in zip(keys, (*keys[1:], keys[0]), strict=True)
        }
    )


BIG = 2**70  # an OverflowError at an int64 column, numpy's seeds refuse it
EXPLAIN = ["explain", "--policy", "fsf", "--layers", "12"]
OUT = "{tmp}/out"
SYNTH = ["build", "--data-only", "--out", OUT]

CASES += [
    # ------------------------------------------------- counts that would never end (bounded)
    Case(
        "languages-1000",
        "sweep",
        VALIDATE,
        ["base.target_langs", "at most 256"],
        _space(base__target_langs=[f"l{i}" for i in range(1000)]),
    ),
    Case(
        "languages-10000",
        "sweep",
        VALIDATE,
        ["base.target_langs", "at most 256"],
        _space(base__target_langs=[f"l{i}" for i in range(10_000)]),
    ),
    Case(
        "cka-languages-1000",
        "sweep",
        VALIDATE,
        ["base.analysis.cka.languages", "at most 257"],
        _space(base__analysis={"cka": {"languages": [f"l{i}" for i in range(1000)]}}),
    ),
    Case(
        "train-languages-1000",
        "train",
        ["--set", "target_langs=[" + ", ".join(f"l{i}" for i in range(1000)) + "]"],
        ["target_langs", "at most 256"],
    ),
    Case(
        "explain-steps-1e12",
        "policy",
        [*EXPLAIN, "--steps", "1000000000000"],
        ["--steps", "100,000"],
    ),
    Case(
        "explain-steps-times-layers",
        "policy",
        ["explain", "--policy", "fsf", "--layers", "1000", "--steps", "100000"],
        ["--steps", "2,400,000"],
    ),
    Case(
        "explain-losses-too-many",
        "policy",
        [*EXPLAIN, "--losses", "{tmp}/loss.txt"],
        ["--losses", "100,001 losses", "100,000"],
        files={"loss.txt": "0.5\n" * 100_001},
    ),
    Case(
        "dry-run-1e9",
        "sweep",
        [*RUN, "--dry-run", "1000000000"],
        ["--dry-run", "1,000", "1000000000"],
        {},
    ),
    Case(
        "dry-run-num-trials-1e12",
        "sweep",
        [*RUN, "--num-trials", "1000000000000", "--dry-run"],
        ["--num-trials", "100000"],
        {},
    ),
    Case(
        "dry-run-max-concurrent-1e12",
        "sweep",
        [*RUN, "--max-concurrent", "1000000000000", "--dry-run"],
        ["--max-concurrent", "100000"],
        {},
    ),
    Case(
        "num-trials-1e12",
        "sweep",
        VALIDATE,
        ["search.num_trials", "100000"],
        _space(search__num_trials=10**12),
    ),
    Case(
        "max-concurrent-1e12",
        "sweep",
        VALIDATE,
        ["search.max_concurrent", "100000"],
        _space(search__max_concurrent=10**12),
    ),
    Case(
        "search-seeds-101",
        "sweep",
        VALIDATE,
        ["search.seeds", "at most 100"],
        _space(search__seeds=list(range(101))),
    ),
    Case(
        "confirm-seeds-101",
        "sweep",
        VALIDATE,
        ["confirm.seeds", "at most 100"],
        _space(confirm={"seeds": list(range(1000, 1101))}),
    ),
    Case(
        "model-max-length-1e9",
        "sweep",
        VALIDATE,
        ["base.model.max_length", "131072"],
        _space(base__model={"max_length": 10**9}),
    ),
    Case(
        "probe-layer-1e6",
        "sweep",
        VALIDATE,
        ["base.probe.layer", "1024"],
        _space(base__probe={"action": "reinit", "layer": 10**6}),
    ),
    Case(
        "workers-1e6",
        "sweep",
        VALIDATE,
        ["search.resources.workers", "1024"],
        _space(search__resources={"workers": 10**6}),
    ),
    # ------------------------------------------------- `when:` conditions that name each other
    Case(
        "when-two-name-each-other",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.c1.when.policy.c2", "written before"],
        _when_cycle("policy.c1", "policy.c2"),
    ),
    Case(
        "when-three-in-a-cycle",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.c2.when.policy.r", "written before"],
        _when_cycle("policy.c1", "policy.c2", "policy.r"),
    ),
    # ------------------------------------------------- numbers: inf, nan, out of range
    Case(
        "float-step-inf",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.c2.step", "finite", "inf"],
        _param(type="float", low=2, high=20, step=float("inf")),
    ),
    Case(
        "float-step-nan",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.c2.step", "finite", "nan"],
        _param(type="float", low=2, high=20, step=float("nan")),
    ),
    Case(
        "float-low-nan",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.c2.low", "finite"],
        _param(type="float", low=float("nan"), high=20),
    ),
    Case(
        "float-high-inf",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.c2.high", "finite"],
        _param(type="float", low=2, high=float("inf")),
    ),
    Case(
        "categorical-value-inf",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.c2.values", "finite"],
        _param(type="categorical", values=[10, float("inf")]),
    ),
    Case(
        "categorical-value-2^70",
        "sweep",
        VALIDATE,
        ["search.parameters.seed.values", "2**53"],
        _param(key="seed", type="categorical", values=[0, BIG]),
    ),
    Case(
        "grid-value-nan",
        "sweep",
        VALIDATE,
        ["search.parameters.policy.c2.grid", "finite"],
        _space(
            search__searcher="grid",
            search__parameters={
                "policy.c2": {"type": "float", "low": 2, "high": 20, "grid": [5, float("nan")]}
            },
        ),
    ),
    Case(
        "searcher-seed-negative",
        "sweep",
        VALIDATE,
        ["search.searcher_seed", "-5"],
        _space(search__searcher_seed=-5),
    ),
    Case(
        "searcher-seed-2^32",
        "sweep",
        VALIDATE,
        ["search.searcher_seed", "4294967296"],
        _space(search__searcher_seed=2**32),
    ),
    Case("seed-2^70", "sweep", VALIDATE, ["base.seed", str(BIG)], _space(base__seed=BIG)),
    Case("seed-negative", "sweep", VALIDATE, ["base.seed", "-1"], _space(base__seed=-1)),
    Case(
        "search-seed-2^70",
        "sweep",
        VALIDATE,
        ["search.seeds[1]", str(BIG)],
        _space(search__seeds=[0, BIG]),
    ),
    Case(
        "confirm-seed-negative",
        "sweep",
        VALIDATE,
        ["confirm.seeds[0]", "-1"],
        _space(confirm={"seeds": [-1, 5]}),
    ),
    Case(
        "few-shot-seed-2^70",
        "sweep",
        VALIDATE,
        ["base.few_shot.seed", str(BIG)],
        _space(base__few_shot={"m": 0, "seed": BIG}),
    ),
    Case(
        "epochs-inf",
        "sweep",
        VALIDATE,
        ["base.optim.epochs", "finite"],
        _space(base__optim={"epochs": float("inf")}),
    ),
    Case(
        "epochs-1e9",
        "sweep",
        VALIDATE,
        ["base.optim.epochs", "10000"],
        _space(base__optim={"epochs": 1e9}),
    ),
    Case(
        "max-steps-1e20",
        "sweep",
        VALIDATE,
        ["base.optim.max_steps", "1000000000"],
        _space(base__optim={"max_steps": 10**20}),
    ),
    Case(
        "max-steps-2^70",
        "sweep",
        VALIDATE,
        ["base.optim.max_steps", "1000000000"],
        _space(base__optim={"max_steps": BIG}),
    ),
    Case(
        "eval-every-2^70",
        "sweep",
        VALIDATE,
        ["base.eval.every_steps", "1000000000"],
        _space(base__eval={"every_steps": BIG}),
    ),
    Case(
        "batch-size-2^40",
        "sweep",
        VALIDATE,
        ["base.optim.batch_size", "1048576"],
        _space(base__optim={"max_steps": 2, "batch_size": 2**40}),
    ),
    Case(
        "lr-inf",
        "sweep",
        VALIDATE,
        ["base.optim.lr", "finite"],
        _space(base__optim={"lr": float("inf")}),
    ),
    Case(
        "lr-nan",
        "sweep",
        VALIDATE,
        ["base.optim.lr", "finite"],
        _space(base__optim={"lr": float("nan")}),
    ),
    Case(
        "weight-decay-nan",
        "sweep",
        VALIDATE,
        ["base.optim.weight_decay", "finite"],
        _space(base__optim={"weight_decay": float("nan")}),
    ),
    Case(
        "eps-inf",
        "sweep",
        VALIDATE,
        ["base.optim.eps", "finite"],
        _space(base__optim={"eps": float("inf")}),
    ),
    Case(
        "warmup-nan",
        "sweep",
        VALIDATE,
        ["base.optim.warmup_ratio", "finite"],
        _space(base__optim={"warmup_ratio": float("nan")}),
    ),
    Case(
        "grad-clip-inf",
        "sweep",
        VALIDATE,
        ["base.optim.grad_clip", "finite"],
        _space(base__optim={"grad_clip": float("inf")}),
    ),
    Case(
        "betas-above-one",
        "sweep",
        VALIDATE,
        ["base.optim.betas[1]", "1.5"],
        _space(base__optim={"betas": [0.9, 1.5]}),
    ),
    Case(
        "betas-nan",
        "sweep",
        VALIDATE,
        ["base.optim.betas[0]", "finite"],
        _space(base__optim={"betas": [float("nan"), 0.999]}),
    ),
    Case(
        "policy-c2-inf",
        "sweep",
        VALIDATE,
        ["base.policy.c2", "finite"],
        _space(base__policy={"c2": float("inf")}),
    ),
    Case(
        "policy-threshold-nan",
        "sweep",
        VALIDATE,
        ["base.policy.threshold", "finite"],
        _space(base__policy={"threshold": float("nan")}),
    ),
    Case(
        "policy-r-inf",
        "sweep",
        VALIDATE,
        ["base.policy.r", "finite"],
        _space(base__policy={"r": float("inf")}),
    ),
    Case(
        "policy-noise-inf",
        "sweep",
        VALIDATE,
        ["base.policy.noise_lambda", "finite"],
        _space(base__policy={"name": "noisytune", "noise_lambda": float("inf")}),
    ),
    Case(
        "policy-switch-fraction-nan",
        "sweep",
        VALIDATE,
        ["base.policy.switch_fraction", "finite"],
        _space(base__policy={"switch": "fraction", "switch_fraction": float("nan")}),
    ),
    Case(
        "policy-window-2^70",
        "sweep",
        VALIDATE,
        ["base.policy.window", "2**53"],
        _space(base__policy={"window": BIG}),
    ),
    Case(
        "cka-min-drop-nan",
        "sweep",
        VALIDATE,
        ["base.policy.cka.min_drop", "finite"],
        _space(base__policy={"policy_iv": "cka", "cka": {"min_drop": float("nan")}}),
    ),
    Case(
        "resources-cpus-inf",
        "sweep",
        VALIDATE,
        ["search.resources.cpus", "finite"],
        _space(search__resources={"cpus": float("inf")}),
    ),
    Case(
        "resources-cpus-nan",
        "sweep",
        VALIDATE,
        ["search.resources.cpus", "finite"],
        _space(search__resources={"cpus": float("nan")}),
    ),
    Case(
        "resources-gpus-inf",
        "sweep",
        VALIDATE,
        ["search.resources.gpus", "finite"],
        _space(search__resources={"gpus": float("inf")}),
    ),
    Case(
        "resources-custom-inf",
        "sweep",
        VALIDATE,
        ["search.resources.custom.x", "finite"],
        _space(search__resources={"custom": {"x": float("inf")}}),
    ),
    Case(
        "asha-max-t-2^70",
        "sweep",
        VALIDATE,
        ["search.scheduler.max_t", "2**53"],
        _space(search__scheduler={"type": "asha", "max_t": BIG}),
    ),
    Case(
        "asha-reduction-inf",
        "sweep",
        VALIDATE,
        ["search.scheduler.reduction_factor", "finite"],
        _space(search__scheduler={"type": "asha", "reduction_factor": float("inf")}),
    ),
    Case(
        "max-failures-1e6",
        "sweep",
        VALIDATE,
        ["search.max_failures", "100"],
        _space(search__max_failures=10**6),
    ),
    Case(
        "logger-setting-inf",
        "sweep",
        VALIDATE,
        ["loggers", "finite"],
        _space(loggers={"mlflow": {"tracking_uri": "file:///tmp/x", "x": float("inf")}}),
    ),
    Case(
        "probe-rule-nan",
        "sweep",
        VALIDATE,
        ["probe.rule.min_z", "finite"],
        _space(probe={"rule": {"min_z": float("nan")}}, search={"num_trials": 2}),
    ),
    # ------------------------------------------------- --set values
    Case(
        "set-c2-inf",
        "sweep",
        [*VALIDATE, "--set", "policy.c2=.inf"],
        ["base.policy.c2", "finite"],
        {},
    ),
    Case(
        "set-threshold-nan",
        "sweep",
        [*VALIDATE, "--set", "policy.threshold=.nan"],
        ["base.policy.threshold", "finite"],
        {},
    ),
    Case(
        "set-seed-2^70",
        "sweep",
        [*VALIDATE, "--set", f"seed={BIG}"],
        ["base.seed", str(BIG)],
        {},
    ),
    Case("train-seed-2^70", "train", ["--set", f"seed={BIG}"], ["seed", str(BIG)]),
    Case("train-epochs-inf", "train", ["--set", "optim.epochs=.inf"], ["optim.epochs", "finite"]),
    Case(
        "train-max-steps-1e20",
        "train",
        ["--set", f"optim.max_steps={10**20}"],
        ["optim.max_steps", "1000000000"],
    ),
    Case("train-c2-inf", "train", ["--set", "policy.c2=.inf"], ["policy.c2", "finite"]),
    Case(
        "train-threshold-nan",
        "train",
        ["--set", "policy.threshold=.nan"],
        ["policy.threshold", "finite"],
    ),
    Case("train-lr-nan", "train", ["--set", "optim.lr=.nan"], ["optim.lr", "finite"]),
    Case(
        "train-every-steps-2^70",
        "train",
        ["--set", f"eval.every_steps={BIG}"],
        ["eval.every_steps", "1000000000"],
    ),
    Case("train-few-shot-seed-negative", "train", ["--set", "few_shot.seed=-1"], ["few_shot.seed"]),
    Case(
        "explain-set-c2-inf",
        "policy",
        [*EXPLAIN, "--steps", "10", "--set", "c2=.inf"],
        ["policy.c2", "finite"],
    ),
    Case(
        "explain-set-threshold-nan",
        "policy",
        [*EXPLAIN, "--steps", "10", "--set", "threshold=.nan"],
        ["policy.threshold", "finite"],
    ),
    Case(
        "explain-set-window-2^70",
        "policy",
        [*EXPLAIN, "--steps", "10", "--set", f"window={BIG}"],
        ["policy.window", "2**53"],
    ),
    Case(
        "explain-losses-nan",
        "policy",
        [*EXPLAIN, "--losses", "{tmp}/loss.txt"],
        ["--losses line 2", "finite", "'nan'"],
        files={"loss.txt": "1.0\nnan\n0.5\n"},
    ),
    Case(
        "explain-losses-inf",
        "policy",
        [*EXPLAIN, "--losses", "{tmp}/loss.txt"],
        ["--losses line 3", "finite", "'-inf'"],
        files={"loss.txt": "1.0\n0.9\n-inf\n"},
    ),
    Case(
        "explain-cka-nan",
        "policy",
        [*EXPLAIN, "--steps", "10", "--cka", "{tmp}/cka.txt"],
        ["--cka line 2", "'10 nan'"],
        files={"cka.txt": "0 0.99\n10 nan\n"},
    ),
    Case(
        "explain-cka-step-negative",
        "policy",
        [*EXPLAIN, "--steps", "10", "--cka", "{tmp}/cka.txt"],
        ["--cka line 1", "'-5 0.9'"],
        files={"cka.txt": "-5 0.9\n"},
    ),
    # ------------------------------------------------- Ray's arguments, refused before Ray starts
    Case(
        "num-cpus-negative",
        "sweep",
        [*RUN, "--num-cpus", "-1", "--dry-run"],
        ["--num-cpus", "-1"],
        {},
    ),
    Case("num-cpus-zero", "sweep", [*RUN, "--num-cpus", "0", "--dry-run"], ["--num-cpus", "0"], {}),
    Case(
        "num-cpus-1e9",
        "sweep",
        [*RUN, "--num-cpus", "1000000000", "--dry-run"],
        ["--num-cpus", "1000000000"],
        {},
    ),
    Case(
        "address-colons",
        "sweep",
        [*RUN, "--address", ":::", "--dry-run"],
        ["--address", "':::'"],
        {},
    ),
    Case(
        "address-port-out-of-range",
        "sweep",
        [*RUN, "--address", "head:99999", "--dry-run"],
        ["--address", "'head:99999'"],
        {},
    ),
    Case(
        "address-no-port",
        "sweep",
        [*RUN, "--address", "head", "--dry-run"],
        ["--address", "'head'"],
        {},
    ),
    Case(
        "address-with-space",
        "sweep",
        [*RUN, "--address", "a b:6379", "--dry-run"],
        ["--address", "'a b:6379'"],
        {},
    ),
    Case(
        "address-escape",
        "sweep",
        [*RUN, "--address", "h\x1b[2J:1", "--dry-run"],
        ["--address", "'h\\x1b[2J:1'"],
        {},
    ),
    Case(
        "env-ray-address",
        "sweep",
        [*RUN, "--dry-run"],
        ["RAY_ADDRESS", "':::'"],
        {},
        env={"RAY_ADDRESS": ":::"},
    ),
    # ------------------------------------------------- deepspeed.extra
    Case(
        "ds-extra-zero-a-string",
        "sweep",
        VALIDATE,
        ["base.deepspeed.extra", "zero_optimization must be a mapping"],
        _space(base__deepspeed={"extra": {"zero_optimization": "yes"}}),
    ),
    Case(
        "ds-extra-fp16-a-list",
        "sweep",
        VALIDATE,
        ["base.deepspeed.extra", "fp16 must be a mapping"],
        _space(base__deepspeed={"extra": {"fp16": [1]}}),
    ),
    Case(
        "ds-extra-zero-stage-a-string",
        "sweep",
        VALIDATE,
        ["base.deepspeed.extra", "zero_optimization.stage", "deepspeed.zero_stage"],
        _space(base__deepspeed={"extra": {"zero_optimization": {"stage": "x"}}}),
    ),
    Case(
        "ds-extra-batch-size",
        "sweep",
        VALIDATE,
        ["base.deepspeed.extra", "train_batch_size", "optim.batch_size"],
        _space(base__deepspeed={"extra": {"train_batch_size": 7}}),
    ),
    Case(
        "ds-extra-inf",
        "sweep",
        VALIDATE,
        ["base.deepspeed.extra", "finite"],
        _space(base__deepspeed={"extra": {"gradient_clipping": float("inf")}}),
    ),
    Case(
        "ds-extra-deepspeed-refuses",
        "sweep",
        VALIDATE,
        ["base.deepspeed.extra", "DeepSpeed refuses", "offload_optimizer"],
        _space(
            base__deepspeed={"extra": {"zero_optimization": {"stage": 0, "offload_optimizer": 5}}}
        ),
    ),
    Case(
        "train-ds-extra-zero-a-string",
        "train",
        ["--set", "deepspeed.extra={zero_optimization: yes}"],
        ["deepspeed.extra", "zero_optimization must be a mapping"],
    ),
    # ------------------------------------------------- language codes (they name files, fill tables)
    Case(
        "language-escape-sequence",
        "sweep",
        VALIDATE,
        ["base.target_langs[1]", "language code", "\\x1b"],
        _space(base__target_langs=["fr", "\x1b]0;pwned\x07"]),
    ),
    Case(
        "language-path",
        "sweep",
        VALIDATE,
        ["base.target_langs[0]", "language code", "'../../x'"],
        _space(base__target_langs=["../../x"]),
    ),
    Case(
        "source-language-empty",
        "sweep",
        VALIDATE,
        ["base.source_lang", "language code"],
        _space(base__source_lang=""),
    ),
    Case(
        "train-language-escape",
        "train",
        ["--set", 'target_langs=[fr, "\\e[2J"]'],
        ["target_langs[1]", "language code"],
    ),
    # ------------------------------------------------- synth build --out over someone else's folder
    Case(
        "synth-foreign-manifest",
        "synth",
        SYNTH,
        ["--out", "manifest.json", "not an fsf-synth build"],
        files={"out/manifest.json": '{"name": "my model", "files": ["weights.bin"]}'},
    ),
    Case(
        "synth-manifest-not-json",
        "synth",
        SYNTH,
        ["--out", "manifest.json"],
        files={"out/manifest.json": "not json {"},
    ),
    Case(
        "synth-manifest-a-list",
        "synth",
        SYNTH,
        ["--out", "manifest.json"],
        files={"out/manifest.json": "[1, 2]"},
    ),
    Case(
        "synth-foreign-files",
        "synth",
        SYNTH,
        ["--out", "notes.txt", "does not write"],
        files={"out/notes.txt": "my notes", "out/data/keep.txt": "mine"},
    ),
]


def _main(cli: str):  # type: ignore[no-untyped-def]
    if cli == "sweep":
        from fsf.cli.sweep import main
    elif cli == "train":
        from fsf.cli.train import main
    elif cli == "synth":
        from fsf.cli.synthetic import main
    else:
        from fsf.cli.policies import main
    return main


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-results") / "toy"
    write(root / "results", [run("t0", [ev2(0, 0.5, 0.4, 0.3), ev2(10, 0.8, 0.6, 0.5)])])
    return root


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


# a case that would never end without its limit fails here instead of hanging the suite
@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path, results, capsys, monkeypatch):
    monkeypatch.delenv("FSF_OPTUNA_STORAGE", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    space = tmp_path / "space.yaml"
    fill = {"tmp": str(tmp_path), "space": str(space), "results": str(results)}
    if isinstance(case.space, dict):
        data = {
            **case.space,
            "storage": case.space.get("storage", {"path": str(tmp_path / "runs")}),
        }
        space.write_text(yaml.safe_dump(data))
    elif case.space is not None:
        space.write_text(_fill(case.space, fill))
    for name, text in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(_fill(text, fill))
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    argv = [_fill(a, fill) for a in case.argv]
    before = _tree(tmp_path)
    before_results = _tree(results)
    if case.subprocess:
        code, err = _in_subprocess(case.cli, argv, cwd)
    else:
        try:
            code = _main(case.cli)(argv)
        except SystemExit as exc:  # argparse refuses the flag itself
            code = exc.code
        err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err) < 4000, err
    expect = [_fill(e, fill) for e in case.expect]
    lines = [line for line in err.splitlines() if all(e in line for e in expect)]
    assert lines, f"no line of stderr has all of {expect}:\n{err}"
    assert all(len(line) < 1000 for line in err.splitlines()), err
    # nothing written anywhere: not beside the inputs, not in the cwd, not in the results
    assert _tree(tmp_path) == before, sorted(_tree(tmp_path) - before)
    assert _tree(results) == before_results
    assert not (tmp_path.parent / "x").exists()


def _in_subprocess(cli: str, argv: list[str], cwd: Path) -> tuple[int, str]:
    """The console script as a process of its own, at most 4 GiB of memory and 120 s."""
    module = {
        "sweep": "fsf.cli.sweep",
        "train": "fsf.cli.train",
        "policy": "fsf.cli.policies",
        "synth": "fsf.cli.synthetic",
    }

    def limit() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))

    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", module[cli], *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert time.monotonic() - t0 < 100
    return proc.returncode, proc.stderr


# ------------------------------------------------------------- inputs read with a size limit


#: Inputs that are devices or huge files: each (id, cli, argv, expect) runs in one child
#: process under a memory limit (a regression reads /dev/zero until memory runs out: it must
#: fail these tests, not take the test process with it). `{sparse}` is a 3 GB sparse file,
#: `{model}` a model folder whose config.json is that file, `{out}` a folder whose
#: manifest.json is /dev/zero.
BOUNDED = [
    ("space-dev-zero", "sweep", ["validate", "--space", "/dev/zero"], ["/dev/zero", "10,485,760"]),
    (
        "space-dev-urandom",
        "sweep",
        ["validate", "--space", "/dev/urandom"],
        ["/dev/urandom", "10,485,760"],
    ),
    ("space-sparse-3gb", "sweep", ["validate", "--space", "{sparse}"], ["big.yaml", "10,485,760"]),
    (
        "base-dev-zero",
        "sweep",
        ["validate", "--space", "{space}", "--base", "/dev/zero"],
        ["/dev/zero", "10,485,760"],
    ),
    (
        "run-space-dev-zero",
        "sweep",
        ["--space", "/dev/zero", "--dry-run"],
        ["/dev/zero", "10,485,760"],
    ),
    ("train-config-dev-zero", "train", ["--config", "/dev/zero"], ["/dev/zero", "10,485,760"]),
    ("train-config-sparse", "train", ["--config", "{sparse}"], ["big.yaml", "10,485,760"]),
    (
        "explain-losses-dev-zero",
        "policy",
        ["explain", "--policy", "fsf", "--layers", "12", "--losses", "/dev/zero"],
        ["--losses", "16,777,216"],
    ),
    (
        "explain-losses-sparse",
        "policy",
        ["explain", "--policy", "fsf", "--layers", "12", "--losses", "{sparse}"],
        ["--losses", "16,777,216"],
    ),
    (
        "explain-cka-dev-zero",
        "policy",
        ["explain", "--policy", "fsf", "--layers", "12", "--steps", "9", "--cka", "/dev/zero"],
        ["--cka", "16,777,216"],
    ),
    (
        "model-config-json-3gb",
        "sweep",
        ["validate", "--space", "{space}", "--set", "model.name={model}"],
        ["base.model.name", "config.json", "10,485,760"],
    ),
    (
        "synth-manifest-dev-zero",
        "synth",
        ["build", "--data-only", "--out", "{out}"],
        ["--out", "manifest.json"],
    ),
]

_BOUNDED_CHILD = r"""
import contextlib, io, json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))
from tests.test_hostile_inputs import _main
out = {}
for case_id, cli, argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = _main(cli)(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # a regression: its traceback is the answer
            import traceback
            code = "raised"
            err.write("Traceback " + "".join(traceback.format_exception(exc))[-2000:])
    out[case_id] = {"code": code, "err": err.getvalue()[-4000:], "s": time.monotonic() - t0}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every BOUNDED case, run once in one child process; its answers by id."""
    tmp = tmp_path_factory.mktemp("bounded")
    (tmp / "cwd").mkdir()
    space = tmp / "space.yaml"
    space.write_text(yaml.safe_dump({**BASE_SPACE, "storage": {"path": str(tmp / "runs")}}))
    sparse = tmp / "big.yaml"
    with open(sparse, "wb") as fh:
        fh.truncate(3 * 2**30)  # 3 GB, no disk used
    model = tmp / "model"
    model.mkdir()
    (model / "config.json").symlink_to(sparse)
    out = tmp / "out"
    out.mkdir()
    (out / "manifest.json").symlink_to("/dev/zero")
    fill = {"space": str(space), "sparse": str(sparse), "model": str(model), "out": str(out)}
    cases = [(i, cli, [_fill(a, fill) for a in argv]) for i, cli, argv, _ in BOUNDED]
    before = _tree(tmp)
    proc = subprocess.run(
        [sys.executable, "-c", _BOUNDED_CHILD, json.dumps(cases)],
        cwd=tmp / "cwd",
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    got["written"] = sorted(_tree(tmp) - before)
    return got


@pytest.mark.parametrize("case", BOUNDED, ids=[c[0] for c in BOUNDED])
def test_an_input_is_read_only_up_to_its_limit(case, bounded):
    case_id, _, _, expect = case
    got = bounded[case_id]
    err = got["err"]
    assert got["code"] == 2, err
    assert "Traceback" not in err and len(err) < 2000, err
    assert any(all(e in line for e in expect) for line in err.splitlines()), (expect, err)
    assert got["s"] < 30, f"took {got['s']:.0f} s: read before the limit was checked?"
    assert bounded["written"] == []


def test_read_limited_stops_at_the_limit(tmp_path):
    from fsf.text import InputTooLarge, read_limited

    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    assert read_limited(f, 100) == b"x" * 100
    with pytest.raises(InputTooLarge, match="larger than 99 bytes"):
        read_limited(f, 99)
    t0 = time.monotonic()
    with pytest.raises(InputTooLarge):
        read_limited("/dev/zero", 2**20)
    assert time.monotonic() - t0 < 5


# ------------------------------------------------------------- every number of every config


def _config_models() -> list[type]:
    from fsf.analysis.probe_spec import ProbeSpec, SetRule
    from fsf.config import (
        AnalysisConfig,
        CheckpointConfig,
        CkaConfig,
        DeepSpeedConfig,
        EvalConfig,
        FewShotConfig,
        OptimConfig,
        ProbeConfig,
        RunConfig,
    )
    from fsf.policies.config import PolicyConfig
    from fsf.policies.settings import PolicyIVCkaConfig
    from fsf.sweep.spec import (
        ConfirmSpec,
        Objective,
        Parameter,
        RaceSpec,
        Resources,
        SchedulerSpec,
        SearchSpec,
        Storage,
        SweepSpec,
    )
    from fsf.tasks.config import TaskConfig
    from fsf.tasks.settings import ModelConfig, QAConfig

    return [
        RunConfig, OptimConfig, EvalConfig, FewShotConfig, DeepSpeedConfig, ProbeConfig,
        CkaConfig, AnalysisConfig, CheckpointConfig, ModelConfig, QAConfig, TaskConfig,
        PolicyConfig, PolicyIVCkaConfig, SweepSpec, SearchSpec, Parameter, Objective,
        SchedulerSpec, Resources, Storage, ConfirmSpec, RaceSpec, ProbeSpec, SetRule,
    ]  # fmt: skip


#: what a model needs besides the field under test
_REQUIRED = {"Parameter": {"type": "float", "low": 1.0, "high": 2.0}}


def _hostile_values(annotation: object) -> list[tuple[str, object]]:
    """(label, value) of the out-of-range numbers a field of this type must refuse: inf and
    nan where it holds floats, 2**70 where it holds integers (inside lists, tuples and
    mappings too)."""
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is float:
        return [("inf", float("inf")), ("nan", float("nan"))]
    if annotation is int:
        return [("2^70", 2**70)]
    if origin is typing.Annotated:
        return _hostile_values(args[0])
    if origin in (list, tuple) and args:
        inner = _hostile_values(args[0])
        if origin is tuple and len(args) > 1 and args[1] is not Ellipsis:
            return [(f"[{label}, ...]", [v, *[0.5] * (len(args) - 1)]) for label, v in inner]
        return [(f"[{label}]", [v]) for label, v in inner]
    if origin is dict and len(args) == 2:
        inner = _hostile_values(args[1]) if args[1] is not typing.Any else []
        if args[1] is typing.Any:
            inner = [("inf", float("inf")), ("2^70", 2**70)]
        return [(f"{{x: {label}}}", {"x": v}) for label, v in inner]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out = []
        for a in args:
            out += [v for v in _hostile_values(a) if v not in out]
        return out
    return []


def _number_cases() -> list:
    cases = []
    for model in _config_models():
        # `base` / `baseline` are run configs (checked as RunConfig); `loggers` is keyed by
        # logger names (an explicit case above)
        skip = getattr(model, "_validated_elsewhere", frozenset()) | {"loggers"}
        for name, info in model.model_fields.items():
            if name in skip:
                continue
            for label, value in _hostile_values(info.annotation):
                cases.append(
                    pytest.param(model, name, value, id=f"{model.__name__}.{name}={label}")
                )
    return cases


@pytest.mark.parametrize(("model", "field", "value"), _number_cases())
def test_every_number_field_refuses_non_finite_and_huge_values(model, field, value):
    from pydantic import ValidationError

    data = {**_REQUIRED.get(model.__name__, {}), field: value}
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert any(err["loc"][:1] == (field,) for err in info.value.errors()), info.value


def test_the_number_cases_cover_the_config_models():
    ids = {p.id.split("=")[0] for p in _number_cases()}
    assert {"RunConfig.seed", "OptimConfig.lr", "SearchSpec.searcher_seed", "Parameter.step"} <= ids
    assert len(ids) >= 60


# ------------------------------------------------------------- a pickled model


def test_a_pickled_model_file_is_one_line_and_never_unpickled(tmp_path, capsys):
    """torch refuses to unpickle a `pytorch_model.bin` that is not plain tensors; fsf says so
    in one line naming model.name, instead of torch's 50-line traceback."""
    import pickle
    import shutil

    from fsf.cli.train import main
    from fsf.synthetic import model_dir

    model = tmp_path / "model"
    shutil.copytree(model_dir(), model, ignore=shutil.ignore_patterns("*.safetensors"))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # runs `touch marker` if anything unpickles it
            return (os.system, (f"touch {marker}",))

    (model / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    code = main(
        [
            "--set", f"model.name={model}",
            "--set", "engine=torch",
            "--set", f"output_dir={tmp_path / 'runs'}",
            "--set", "optim.max_steps=1",
            "--no-progress",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "model.name" in err and "pickle" in err and "safetensors" in err
    assert not marker.exists()


# ------------------------------------------------------------- control characters shown escaped


#: a policy and a language value as a hostile co-worker could write them into a fragment:
#: set the window title, clear the screen, colour the rest
ESC_POLICY = "fsf\x1b]0;PWNED\x07\x1b[2J"
ESC_LANG = "d\x1b[31me\u202e"


@pytest.fixture(scope="module")
def escaped_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder whose fragments hold control characters in `policy` and
    `language` (rewritten after the writer, which takes only validated configs)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("escapes") / "toy"
    paths = write(
        root / "results",
        [
            run("t0", [ev2(0, 0.5, 0.4, 0.3), ev2(10, 0.8, 0.6, 0.5)]),
            run("t1", [ev2(0, 0.5, 0.4, 0.3), ev2(10, 0.7, 0.7, 0.4)], policy="df"),
        ],
    )
    for path in paths:
        t = pq.read_table(path)
        cols = []
        for name, col in zip(t.column_names, t.columns, strict=True):
            values = col.to_pylist()
            if name == "policy" and "t0" in str(path):
                col = pa.array([ESC_POLICY] * len(values), type=pa.string()).cast(col.type)
            if name == "language":
                values = [ESC_LANG if v == "de" else v for v in values]
                col = pa.array(values, type=pa.string()).cast(col.type)
            cols.append(col)
        pq.write_table(pa.table(cols, schema=t.schema), path)
    return root


#: command -> (argv, files it writes, whether the policy column is shown)
ESCAPE_COMMANDS = {
    "best-per-language": (["best", "{dir}", "--per-language"], [], True),
    "best-lang": (["best", "{dir}", "--lang", "sw"], [], True),
    "best-csv": (["best", "{dir}", "--per-language", "--format", "csv"], [], True),
    "show": (["show", "{dir}"], [], True),
    "export-csv": (["export", "{dir}", "--to", "{tmp}/rows.csv"], ["rows.csv"], True),
    "emit-config": (
        ["best", "{dir}", "--lang", "sw", "--emit-config", "{tmp}/run.yaml"],
        ["run.yaml"],
        True,
    ),
    "report": (
        ["report", "{dir}", "--out", "{tmp}/report"],
        ["report/report.md", "report/report.html"],
        True,
    ),
    "gap": (["gap", "{dir}"], [], False),
}


@pytest.mark.parametrize("command", list(ESCAPE_COMMANDS))
def test_control_characters_from_results_are_shown_escaped(
    command, escaped_results, tmp_path, capsys
):
    from fsf.cli.sweep import main
    from fsf.text import printable

    argv, files, shows_policy = ESCAPE_COMMANDS[command]
    fill = {"dir": str(escaped_results), "tmp": str(tmp_path)}
    code = main([_fill(a, fill) for a in argv])
    out, err = capsys.readouterr()
    texts = {"stdout": out, "stderr": err}
    texts |= {f: (tmp_path / f).read_text(errors="replace") for f in files}
    assert code in (0, 2), err
    for where, text in texts.items():
        raw = sorted({c for c in text if c not in "\n" and printable(c) != c})
        assert not raw, f"{command} {where}: raw control characters {raw!r}"
    if shows_policy:
        assert printable(ESC_POLICY) in "".join(texts.values())  # shown, as visible escapes


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;t\x07", "\\x1b]0;t\\x07"),
        ("a\x00b", "a\\x00b"),
        ("a\rb", "a\\rb"),
        ("a\nb", "a\\nb"),
        ("a\tb", "a\\tb"),
        ("\x7f", "\\x7f"),
        ("\x9b31m", "\\x9b31m"),
        ("abc\u202edef", "abc\\u202edef"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("\ufeffbom", "\\ufeffbom"),
        ("line\u2028sep", "line\\u2028sep"),
        ("français 中文 ☃ e\u0301", "français 中文 ☃ e\u0301"),
    ],
    ids=repr,
)
def test_printable_escapes_controls_and_keeps_text(text, shown):
    from fsf.text import printable

    assert printable(text) == shown
    assert printable(text, keep_newlines=True) == shown.replace("\\n", "\n")


def test_a_library_warning_quoting_data_is_shown_escaped(capsys):
    """matplotlib warns of a label's missing glyph quoting it, ESC included."""
    import warnings

    from fsf.cli._base import run_main

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code = run_main(lambda: warnings.warn("Glyph 27 (\x1b]0;t\x07) missing", stacklevel=1) or 0)
    err = capsys.readouterr().err
    assert code == 0 and "Glyph 27" in err
    assert "\x1b" not in err and "\x07" not in err and "\\x1b]0;t\\x07" in err


#: `fsf cluster up` arguments Ray would refuse only after starting the node's processes
CLUSTER_ARGS = [
    ("node-cpus-nan", ["--node", "a:nan"], ["--node", "'a:nan'"]),
    ("node-cpus-inf", ["--node", "a:inf"], ["--node", "'a:inf'"]),
    ("node-cpus-negative", ["--node", "a:-1"], ["--node", "'a:-1'"]),
    ("node-gpus-negative", ["--node", "a:1:-2"], ["--node", "GPUs", "'a:1:-2'"]),
    ("node-gpus-not-int", ["--node", "a:1:x"], ["--node", "GPUs", "'a:1:x'"]),
    ("node-name-escape", ["--node", "\x1b]0;t\x07:1"], ["--node", "\\x1b]0;t\\x07"]),
    ("node-name-path", ["--node", "../x:1"], ["--node", "'../x:1'"]),
    ("node-name-empty", ["--node", ":1"], ["--node", "':1'"]),
    ("head-cpus-nan", ["--head-cpus", "nan"], ["--head-cpus", "'nan'"]),
    ("head-cpus-1e9", ["--head-cpus", "1e9"], ["--head-cpus", "'1e9'"]),
]


@pytest.mark.parametrize(
    ("argv", "expect"), [c[1:] for c in CLUSTER_ARGS], ids=[c[0] for c in CLUSTER_ARGS]
)
def test_cluster_arguments_are_refused_before_ray_starts(argv, expect, capsys):
    """Parsed only: a regression here fails the test without starting a cluster."""
    from fsf.cli.cluster import _parser

    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["up", *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "\x1b" not in err and any(all(e in line for e in expect) for line in err.splitlines()), (
        err
    )
