"""fsf's layering (docs/architecture.md), checked on every import in the package: at module
level, inside functions and under `TYPE_CHECKING` alike. A layer is a folder: a module's layer
is the one of the folder it sits in, so a folder never imports a folder above it. No
exceptions list: an import that points up, a private name used from another package, or an
import cycle between modules fails with its file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fsf"

#: Bottom to top. A module may import its own layer and any layer below it.
LAYERS = (
    "base",  # the modules of fsf/ itself: errors, cka, atomic, yamlfile, text, strict, provenance
    "synthetic",  # the embedded world, tokenizer, encoder (needs only base)
    "real",  # the real benchmark built from registry packages (needs only base)
    "policies",
    "tasks",
    "config",
    "results",  # what an evaluation is and which one is a run's checkpoint: below the worker
    "train",
    "analysis",
    "sweep",  # with fsf/cluster: the only layer that imports Ray
    "cli",  # fsf/cli: every command
)
#: Each folder of the package (relative to fsf/) -> its layer. fsf/testing sits beside the
#: stack: it may import any layer, and nothing in the package imports it.
FOLDERS = {
    ".": "base",
    "synthetic": "synthetic",
    "real": "real",
    "policies": "policies",
    "tasks": "tasks",
    "config": "config",
    "results": "results",
    "train": "train",
    "analysis": "analysis",
    "sweep": "sweep",
    "cluster": "sweep",
    "cli": "cli",
    "testing": "testing",
}
#: What `python -m` runs (fsf/__main__.py, fsf/cluster/__main__.py): a program, which nothing
#: imports, so it is a command wherever `python -m` needs it to sit.
PROGRAM = "__main__"


def _folder(module: str) -> str:
    """The folder (relative to fsf/) a dotted module name inside fsf sits in."""
    parts = module.split(".")[1:]
    if parts and (PACKAGE.joinpath(*parts)).is_dir():
        return "/".join(parts)  # a package: its __init__.py
    return "/".join(parts[:-1]) or "."


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside fsf: its folder's."""
    if module.split(".")[-1] == PROGRAM:
        return "cli"
    folder = _folder(module)
    if folder not in FOLDERS:
        raise AssertionError(f"{module}: no layer for fsf/{folder}; add it to FOLDERS and the doc")
    return FOLDERS[folder]


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


def _above(src_layer: str, dst_layer: str) -> bool:
    return "testing" not in (src_layer, dst_layer) and LAYERS.index(dst_layer) > LAYERS.index(
        src_layer
    )


def violations(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = _module_name(path)
        src_layer = layer_of(source)
        where = path.relative_to(ROOT)
        for line, target, names in _imports(path):
            dst_layer = layer_of(target)
            if target.split(".")[-1] == PROGRAM:
                problems.append(f"{where}:{line}: {source} imports {target}, a program")
            elif dst_layer == "testing" and src_layer != "testing":
                problems.append(f"{where}:{line}: {source} imports {target} (test helpers)")
            elif _above(src_layer, dst_layer):
                problems.append(
                    f"{where}:{line}: {source} ({src_layer}) imports {target} "
                    f"({dst_layer}), a layer above it"
                )
            why = _private_use(source, target, names)
            if why:
                problems.append(f"{where}:{line}: {source} imports {why}")
    return problems


def folder_imports(root: Path = PACKAGE) -> dict[tuple[str, str], str]:
    """(importing folder, imported folder) -> the first file:line where it happens, for every
    pair of different folders (programs left out: they are commands wherever they sit)."""
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(root.rglob("*.py")):
        source = _module_name(path)
        if source.split(".")[-1] == PROGRAM:
            continue
        for line, target, _ in _imports(path):
            pair = (_folder(source), _folder(target))
            if pair[0] != pair[1]:
                edges.setdefault(pair, f"{path.relative_to(ROOT)}:{line}")
    return edges


def folder_violations(root: Path = PACKAGE) -> list[str]:
    """Every folder holding modules has a layer, and imports only folders of its layer or
    below (or, for fsf/testing, any)."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        folder = path.parent.relative_to(root).as_posix()
        if folder not in FOLDERS:
            problems.append(f"fsf/{folder}: a folder with no layer; add it to FOLDERS and the doc")
    for (src, dst), where in sorted(folder_imports(root).items()):
        if src in FOLDERS and dst in FOLDERS and _above(FOLDERS[src], FOLDERS[dst]):
            problems.append(
                f"{where}: fsf/{src} ({FOLDERS[src]}) imports fsf/{dst} ({FOLDERS[dst]}), "
                "a folder above it"
            )
    return problems


def _resolve(target: str, names: list[str], modules: set[str]) -> set[str]:
    """The modules an import runs: `from a.b import c` is a.b.c when that is a module, else
    a.b (whose `__init__` defines c)."""
    found = {f"{target}.{n}" for n in names if f"{target}.{n}" in modules}
    if target in modules and (not names or len(found) < len(names)):
        found.add(target)
    return found


def import_cycles(root: Path = PACKAGE) -> list[list[str]]:
    """Each group of modules that import one another, directly or through others (Tarjan's
    strongly connected components), deferred and `TYPE_CHECKING` imports included: a cycle
    hidden in a function is still two modules that cannot be understood one without the
    other. A package's `__init__` importing its own modules is not a cycle by itself; a
    module importing its package's `__init__` back is."""
    paths = {_module_name(p): p for p in root.rglob("*.py")}
    graph = {
        m: set().union(*[_resolve(t, n, set(paths)) for _, t, n in _imports(p)] or [set()])
        for m, p in paths.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v] - {v}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _cycle_lines(group: list[str], root: Path = PACKAGE) -> list[str]:
    members = set(group)
    paths = {_module_name(p): p for p in root.rglob("*.py")}
    return [
        f"  {paths[m].relative_to(ROOT)}:{line}: {m} imports {', '.join(sorted(hit))}"
        for m in group
        for line, t, n in _imports(paths[m])
        if (hit := _resolve(t, n, set(paths)) & members - {m})
    ]


def test_every_import_points_down_and_no_private_name_crosses_a_package():
    problems = violations()
    assert not problems, "\n".join(problems)


def test_no_folder_imports_a_folder_above_it():
    problems = folder_violations()
    assert not problems, "\n".join(problems)
    # the folders do show the stack: fsf/cli imports the layers, nothing imports fsf/cli
    edges = folder_imports()
    assert not [pair for pair in edges if pair[1] == "cli" and pair[0] != "testing"], edges


def test_no_import_cycles_between_modules():
    """No two modules of the package import each other, directly or through others, deferred
    and `TYPE_CHECKING` imports included."""
    cycles = import_cycles()
    assert not cycles, "\n".join("a cycle:\n" + "\n".join(_cycle_lines(g)) for g in cycles)


def _tree(tmp_path, monkeypatch, files: dict[str, str]) -> Path:
    """A tiny copy of the package tree with `files` planted, the checker pointed at it."""
    import tests.test_layers as me

    fake = tmp_path / "fsf"
    for sub in FOLDERS:
        (fake / sub).mkdir(parents=True, exist_ok=True)
        (fake / sub / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    for name, code in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(code)
    monkeypatch.setattr(me, "ROOT", tmp_path)
    monkeypatch.setattr(me, "PACKAGE", fake)
    return fake


@pytest.mark.parametrize(
    ("module", "code", "expected"),
    [
        ("fsf/train/x.py", "from fsf.sweep.tune import run_sweep\n", "a layer above it"),
        ("fsf/tasks/x.py", "def f():\n    from fsf.config import RunConfig\n", "a layer above"),
        ("fsf/policies/x.py", "if TYPE_CHECKING:\n    import fsf.tasks.data\n", "a layer above"),
        ("fsf/analysis/x.py", "from fsf.results._cube import at\n", "private module"),
        ("fsf/analysis/x.py", "from fsf.results.ranking import _stage\n", "private name"),
        ("fsf/results/x.py", "from ..analysis import report\n", "a layer above it"),
        ("fsf/results/cli.py", "from fsf.cli.results import t\n", "a layer above it"),
        ("fsf/errors2.py", "from fsf.results import Results\n", "a layer above it"),
        ("fsf/sweep/x.py", "from fsf.cli import main\n", "a layer above it"),
        ("fsf/sweep/x.py", "from fsf.cluster.__main__ import main\n", "a program"),
        ("fsf/train/x.py", "from fsf.testing import tiny_model\n", "test helpers"),
    ],
)
def test_the_checker_catches_what_it_should(tmp_path, monkeypatch, module, code, expected):
    """The checker on a copy of a tiny package tree: each planted import is reported."""
    fake = _tree(tmp_path, monkeypatch, {module: code})
    found = violations(fake)
    assert len(found) == 1 and expected in found[0], found


def test_the_folder_check_catches_a_folder_above_and_a_folder_with_no_layer(tmp_path, monkeypatch):
    fake = _tree(
        tmp_path,
        monkeypatch,
        {"fsf/results/x.py": "from fsf.cli.results import t\n", "fsf/extra/y.py": ""},
    )
    found = folder_violations(fake)
    assert len(found) == 2, found
    assert "fsf/extra: a folder with no layer" in found[0]
    assert "fsf/results (results) imports fsf/cli (cli), a folder above it" in found[1]


def test_the_cycle_check_finds_deferred_and_package_cycles(tmp_path, monkeypatch):
    fake = _tree(
        tmp_path,
        monkeypatch,
        {
            # a cycle hidden in a function is still a cycle
            "fsf/sweep/space.py": "from fsf.sweep.checks import check\n",
            "fsf/sweep/checks.py": "def check():\n    from fsf.sweep.space import walk\n",
            # a module importing its package's __init__, which imports it (Frame is no module)
            "fsf/results/__init__.py": "from fsf.results.reader import Results\n",
            "fsf/results/reader.py": "from fsf.results import Frame\n",
            "fsf/results/frame.py": "",
            "fsf/policies/config.py": "from fsf.policies import registry\n",
            "fsf/policies/registry.py": "",
        },
    )
    assert sorted(import_cycles(fake)) == [
        ["fsf.results", "fsf.results.reader"],
        ["fsf.sweep.checks", "fsf.sweep.space"],
    ]


def test_allowed_imports_pass(tmp_path, monkeypatch):
    fake = _tree(
        tmp_path,
        monkeypatch,
        {
            "fsf/analysis/x.py": (
                "from fsf.results.cube import at\nfrom fsf.train import train\n"
                "from fsf.errors import E\nfrom fsf.analysis._private import y\n"
            ),
            "fsf/cli/analysis.py": "from fsf.sweep.tune import run_sweep\n",
            "fsf/cli/results.py": "from fsf.cli._base import t\nfrom fsf.analysis import x\n",
            "fsf/cluster/__main__.py": "from fsf.cli.cluster import main\n",
            "fsf/__main__.py": "from fsf.cli import main\n",
        },
    )
    assert violations(fake) == []
    assert folder_violations(fake) == []
    assert import_cycles(fake) == []


def test_a_trial_process_imports_no_query_stack():
    """A trial imports its spec, the worker and the results writer; the package `__init__`s
    on the way load their siblings lazily (`fsf._lazy`), so neither pandas nor
    pyarrow.dataset (a second of every trial process's start) comes with them."""
    import subprocess
    import sys

    code = (
        "import sys, fsf.sweep.trial, fsf.train.worker, fsf.results, fsf.analysis\n"
        "from fsf.results import ParquetReporter, completed_evaluations\n"
        "from fsf.analysis import ProbeSpec\n"
        "print(sorted(m for m in ('pandas', 'pyarrow.dataset', 'ray.tune') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("package", ["fsf.results", "fsf.analysis", "fsf.train"])
def test_a_lazy_export_is_never_a_submodule_name(package):
    """A submodule imported before the package's export of the same name would stand in its
    place (`fsf.results.export` the module, not the function): names must differ."""
    import importlib

    pkg = importlib.import_module(package)
    folder = Path(pkg.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} | {
        p.name for p in folder.iterdir() if p.is_dir()
    }
    clash = sorted(set(pkg._EXPORTS) & modules)
    assert not clash, f"{package}: exports named like a submodule: {clash}"
    for name in pkg.__all__:  # and every export resolves
        assert getattr(pkg, name) is not None


def test_a_sweeps_checks_import_no_torch():
    """The checks a sweep runs before starting Ray (the model's config.json, the data
    folders) read files: the driver does not spend seconds importing torch for them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from fsf.sweep.space import check_resources, load_space\n"
        f"assert check_resources(load_space({str(ROOT / 'sweeps' / 'policies.yaml')!r})) == []\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_drivers_tensorboard_logger_imports_no_torch(tmp_path):
    """Tune's TensorBoard logger, which runs in the sweep's driver, imports tensorboardX, and
    tensorboardX imports torch only to accept torch tensors: the driver loads it without
    torch (2-3 s of CPU while the trial processes start) and its events are still written."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from fsf.sweep._ray import _tensorboardx_without_torch\n"
        "_tensorboardx_without_torch()\n"
        "from tensorboardX import SummaryWriter\n"
        f"w = SummaryWriter({str(tmp_path)!r})\n"
        "w.add_scalar('dev_target_mean', 0.5, 3)\n"
        "w.close()\n"
        "import torch\n"  # and torch itself still imports afterwards
        "print(torch.tensor([1]).item())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr[-2000:]
    (events,) = tmp_path.glob("events.out.tfevents.*")
    assert events.stat().st_size > 0
    code = (
        "import sys\n"
        "from fsf.sweep._ray import _tensorboardx_without_torch\n"
        "_tensorboardx_without_torch()\n"
        "print('torch' in sys.modules, 'tensorboardX' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
