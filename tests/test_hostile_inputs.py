"""Hostile input through the console scripts: every case exits 2 with a short message whose
one line names the field (or flag) and the value received; never a traceback, never a write
outside the folders the command names, never a process killed by a memory bomb.

The cases run in-process through each script's `main` (what the console script calls), except
the memory bombs, which run as real subprocesses under a memory limit (a regression there must
fail the test, not take the test process with it)."""

from __future__ import annotations

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


def _main(cli: str):  # type: ignore[no-untyped-def]
    if cli == "sweep":
        from fsf.sweep.cli import main
    elif cli == "train":
        from fsf.train.cli import main
    else:
        from fsf.policies.cli import main
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
        (tmp_path / name).write_text(text)
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
    module = {"sweep": "fsf.sweep.cli", "train": "fsf.train.cli", "policy": "fsf.policies.cli"}

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
