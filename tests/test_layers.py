"""fsf's layering (docs/architecture.md), checked on every import in the package: at module
level, inside functions and under `TYPE_CHECKING` alike. No exceptions list: an import that
points up, or a private name used from another package, fails with its file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fsf"

#: Bottom to top. A module may import its own layer and any layer below it.
LAYERS = (
    "base",  # fsf.errors, fsf.cka, fsf.atomic, fsf.yamlfile, fsf.text, fsf.strict, fsf.provenance
    "synthetic",  # the embedded world, tokenizer, encoder (needs only base)
    "real",  # the real benchmark built from registry packages (needs only base)
    "policies",
    "tasks",
    "config",
    "results",  # what an evaluation is and which one is a run's checkpoint: below the worker
    "train",
    "analysis",
    "sweep",  # with fsf.cluster: the only layer that imports Ray
    "cli",  # fsf.cli, fsf.__main__, fsf._cli and every package's `cli` / `cli_*` / `__main__`
)
BASE_MODULES = {
    "fsf.errors",
    "fsf.cka",
    "fsf.atomic",
    "fsf.yamlfile",
    "fsf.text",
    "fsf.strict",
    "fsf.provenance",
}
CLI_MODULE_NAMES = {"cli", "__main__", "_cli"}
#: A package's command line may be split into `cli_<part>.py` modules beside its `cli.py`
#: (fsf.results.cli_common, fsf.results.cli_tables, ...): they are the cli layer too.
CLI_MODULE_PREFIX = "cli_"


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside fsf."""
    parts = module.split(".")
    if module == "fsf" or parts[-1] in CLI_MODULE_NAMES or parts[-1].startswith(CLI_MODULE_PREFIX):
        return "cli"
    if module in BASE_MODULES:
        return "base"
    top = parts[1]
    if top == "cli":
        return "cli"
    if top == "cluster":
        return "sweep"
    if top == "testing":
        return "testing"
    if top not in LAYERS:
        raise AssertionError(f"{module}: no layer for fsf.{top}; add it to LAYERS and the doc")
    return top


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every fsf import in `path`."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "fsf"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "fsf":
                out.append((node.lineno, target, [a.name for a in node.names]))
    return out


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else "fsf"


def _private_use(source: str, target: str, names: list[str]) -> str | None:
    """Why `source` may not import `names` from `target`, or None: a module or a name with a
    leading `_` is private to its package (fsf's own top-level `_` modules to fsf)."""
    src_pkg, dst_pkg = _package_of(source), _package_of(target)
    if src_pkg == dst_pkg or dst_pkg == "fsf":
        return None
    inside = target.split(".")[2:]
    if any(p.startswith("_") and not p.startswith("__") for p in inside):
        return f"private module {target}"
    private = [n for n in names if n.startswith("_") and not n.startswith("__")]
    if private:
        return f"private name(s) {', '.join(private)} of {target}"
    return None


def violations(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = _module_name(path)
        src_layer = layer_of(source)
        where = path.relative_to(ROOT)
        for line, target, names in _imports(path):
            dst_layer = layer_of(target)
            if dst_layer == "testing" and src_layer != "testing":
                problems.append(f"{where}:{line}: {source} imports {target} (test helpers)")
            elif "testing" not in (src_layer, dst_layer) and LAYERS.index(dst_layer) > LAYERS.index(
                src_layer
            ):
                problems.append(
                    f"{where}:{line}: {source} ({src_layer}) imports {target} "
                    f"({dst_layer}), a layer above it"
                )
            why = _private_use(source, target, names)
            if why:
                problems.append(f"{where}:{line}: {source} imports {why}")
    return problems


def test_every_import_points_down_and_no_private_name_crosses_a_package():
    problems = violations()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "code", "expected"),
    [
        ("fsf/train/x.py", "from fsf.sweep.tune import run_sweep\n", "a layer above it"),
        ("fsf/tasks/x.py", "def f():\n    from fsf.config import RunConfig\n", "a layer above"),
        ("fsf/policies/x.py", "if TYPE_CHECKING:\n    import fsf.tasks.data\n", "a layer above"),
        ("fsf/analysis/x.py", "from fsf.results._cube import at\n", "private module"),
        ("fsf/analysis/x.py", "from fsf.results.ranking import _stage\n", "private name"),
        ("fsf/results/x.py", "from ..analysis import report\n", "a layer above it"),
        ("fsf/results/x.py", "from fsf.cli.results_tables import t\n", "a layer above it"),
        ("fsf/train/x.py", "from fsf.testing import tiny_model\n", "test helpers"),
    ],
)
def test_the_checker_catches_what_it_should(tmp_path, monkeypatch, module, code, expected):
    """The checker on a copy of a tiny package tree: each planted import is reported."""
    import tests.test_layers as me

    fake = tmp_path / "fsf"
    for sub in ("train", "tasks", "policies", "analysis", "results", "sweep"):
        (fake / sub).mkdir(parents=True)
        (fake / sub / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (tmp_path / module).write_text(code)
    monkeypatch.setattr(me, "ROOT", tmp_path)
    monkeypatch.setattr(me, "PACKAGE", fake)
    found = violations(fake)
    assert len(found) == 1 and expected in found[0], found


def test_allowed_imports_pass(tmp_path, monkeypatch):
    import tests.test_layers as me

    fake = tmp_path / "fsf"
    for sub in ("train", "results", "analysis"):
        (fake / sub).mkdir(parents=True)
        (fake / sub / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "analysis" / "x.py").write_text(
        "from fsf.results.cube import at\nfrom fsf.train import train\nfrom fsf.errors import E\n"
        "from fsf.analysis._private import y\n"
    )
    (fake / "analysis" / "cli.py").write_text("from fsf.sweep.tune import run_sweep\n")
    (fake / "results" / "cli_tables.py").write_text(
        "from fsf.analysis.report import write_report\n"
    )
    monkeypatch.setattr(me, "ROOT", tmp_path)
    monkeypatch.setattr(me, "PACKAGE", fake)
    assert violations(fake) == []
