"""The one `fsf` command: its map, `fsf --help` and the README's Commands table agree; each
alias (fsf-sweep, fsf-train, fsf-policy, fsf-synth, python -m fsf.cluster) and `fsf CMD`
reach the same handler with the same parsed flags; every command takes --version, -v and -q;
`fsf best` loads neither torch nor Ray; one usage-error class."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fsf import __version__, cli
from fsf.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]

#: The arguments after the command name that make each command parse (DIR, FILE: any text).
TAILS: dict[str, list[str]] = {
    "sweep": ["--space", "s.yaml", "--num-trials", "3", "--set", "optim.lr=1e-3"],
    "validate": ["--space", "s.yaml", "--set", "seed=1"],
    "resume": ["DIR", "--num-cpus", "2"],
    "confirm": ["DIR", "--top-k", "2", "--seeds", "7", "8"],
    "best": ["DIR", "--lang", "de", "--top", "3", "--format", "json"],
    "show": ["DIR", "--format", "json"],
    "export": ["DIR", "--to", "rows.csv"],
    "report": ["DIR", "--out", "rep"],
    "compact": ["DIR", "--min-fragments", "3"],
    "gap": ["DIR", "--curves"],
    "cka": ["DIR", "--all-steps"],
    "probe": ["--space", "s.yaml"],
    "train": ["--set", "optim.max_steps=2", "--print-config"],
    "policy": ["explain", "--policy", "fsf", "--layers", "12", "--steps", "5"],
    "synth": ["build", "--out", "out", "--data-only"],
    "data": ["build", "real", "--out", "out"],
    "cluster": ["kill-node", "DIR", "node_a"],
}


def _alias(name: str) -> tuple[argparse.ArgumentParser, list[str]]:
    """The older script's parser and the words that name `name` in it."""
    if name in ("train", "policy", "synth", "cluster"):
        module = {
            "train": "fsf.cli.train",
            "policy": "fsf.cli.policies",
            "synth": "fsf.cli.synthetic",
            "cluster": "fsf.cli.cluster",
        }[name]
        return importlib.import_module(module)._parser(), []
    from fsf.cli import sweep as sweep_cli

    return sweep_cli._parser(), ["run" if name == "sweep" else name]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    found = [n for row in rows for n in re.findall(r"`fsf (\w[\w-]*)", row.split(" | ")[0])]
    return list(dict.fromkeys(found))


def _help_commands(capsys: pytest.CaptureFixture[str]) -> list[str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    listing = out.split("positional arguments:", 1)[1].split("\noptions:", 1)[0]
    return re.findall(r"^    (\w[\w-]*)\s", listing, flags=re.MULTILINE)


def test_the_map_fsf_help_and_the_readme_list_the_same_commands(capsys):
    names = list(cli.COMMANDS)
    assert _help_commands(capsys) == names  # in the map's order
    assert sorted(_readme_commands()) == sorted(names)
    assert set(TAILS) == set(names)
    # every command module's COMMANDS is mounted, whole, under the map
    for module in set(cli.COMMANDS.values()):
        own = importlib.import_module(module).COMMANDS
        assert {n for n, m in cli.COMMANDS.items() if m == module} == set(own), module


#: Commands added after `fsf` became the one command: they have no older script to alias.
NO_ALIAS = {"data"}


@pytest.mark.parametrize("name", [n for n in cli.COMMANDS if n not in NO_ALIAS])
def test_alias_and_fsf_command_reach_the_same_handler_with_the_same_flags(name):
    tail = TAILS[name]
    new = cli.build_parser([name, *tail]).parse_args([name, *tail])
    parser, words = _alias(name)
    old = parser.parse_args([*words, *tail])
    assert callable(new.handler) and new.handler is old.handler
    if cli.command(name).handler is not None:  # else its subcommands carry the handlers
        assert new.handler is cli.command(name).handler
    same = {k: v for k, v in vars(new).items() if k not in ("fsf_command", "command")}
    assert {k: getattr(old, k) for k in same} == same


def test_fsf_sweep_without_a_subcommand_still_runs_a_sweep(monkeypatch):
    from fsf.cli import sweep as sweep_cli

    seen = []
    monkeypatch.setattr(sweep_cli, "_run", lambda args: seen.append(args.space) or 0)
    assert sweep_cli.main(["--space", "s.yaml", "-q"]) == 0
    assert seen == ["s.yaml"]
    assert sweep_cli.main(["-q"]) == 2  # no --space: a usage error


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_takes_version_and_verbosity(name, capsys):
    tail = TAILS[name]
    sub = (
        tail[:1] if name in ("policy", "synth", "cluster", "data") else []
    )  # nested: version there too
    for argv in ([name, "--version"], [name, *sub, "--version"]):
        with pytest.raises(SystemExit) as exc:
            cli.build_parser(argv).parse_args(argv)
        assert exc.value.code == 0
        assert capsys.readouterr().out.strip() == f"fsf (fsf {__version__})"
    quiet = [name, *tail, "-q"]
    assert cli.build_parser(quiet).parse_args(quiet).quiet is True
    loud = ["-vv", name, *tail]
    args = cli.build_parser(loud).parse_args(loud)
    assert args.verbose == 2 and not args.quiet


def test_usage_errors_of_fsf_commands_exit_2(tmp_path, capsys):
    assert cli.main(["best", str(tmp_path), "--per-language"]) == 2
    (tmp_path / "file").write_text("")
    assert cli.main(["synth", "build", "--data-only", "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "is a file" in err and "Traceback" not in err
    for argv in ([], ["frobnicate"], ["best", "--no-such-flag"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2


def test_fsf_best_imports_neither_torch_nor_ray(tmp_path):
    from tests.results.helpers import ev2, run, write

    write(tmp_path / "results", [run("t0", [ev2(s, 0.5 + 0.01 * s, 0.4) for s in range(3)])])
    code = (
        "import sys\n"
        "from fsf.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0\n"
        f"assert main(['best', {str(tmp_path)!r}, '--lang', 'de', '--format', 'json']) == 0\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray'))\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"trial_id": "t0"' in proc.stdout


def test_python_dash_m_fsf_is_the_fsf_command():
    proc = subprocess.run(
        [sys.executable, "-m", "fsf", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"fsf (fsf {__version__})"


def test_there_is_one_usage_error_class():
    """Every class named *UsageError in fsf is fsf.errors.UsageError or a subclass of it."""
    found = []
    for path in sorted((ROOT / "fsf").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("UsageError"):
                rel = path.relative_to(ROOT).with_suffix("")
                module = ".".join(rel.parts).removesuffix(".__init__")
                found.append(getattr(importlib.import_module(module), node.name))
    assert UsageError in found and len(found) >= 2
    assert all(issubclass(c, UsageError) for c in found), found
