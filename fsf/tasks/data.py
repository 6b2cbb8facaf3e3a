"""Loading a (language, split) of a dataset: from the hub, a local hub-layout folder, files.

Everything goes through `datasets.load_dataset`, so a local folder in the hub's layout (one
config per language, as `facebook/xnli`, `google/xtreme` (`PAN-X.de`) and `facebook/mlqa`
(`mlqa.de.de`) have) takes exactly the path that the hub dataset takes. `config` is the
template that names a language's config (`{lang}` by default, `PAN-X.{lang}`, ...; None: the
dataset's default config, as for `rajpurkar/squad`).

`FSF_HUB_MIRROR` (an environment variable) names a folder of local copies of hub dataset
repositories, one folder per repository id (`<mirror>/google/xtreme`, as `hf download
--repo-type dataset google/xtreme --local-dir <mirror>/google/xtreme` lays it out): when it
is set, a hub name is read from its copy there, through the same `load_dataset` call (for
machines without hub access, and for tests). When it is not set, a hub name goes to the hub.

A dataset may also be a file template with `{lang}` / `{split}` placeholders, or one file
(every language and split: meant for a separate training set). A `.json` file in the
original SQuAD / MLQA format (`{"data": [{"paragraphs": [{"context", "qas"}]}]}`) is
flattened to the hub's rows: `id`, `title`, `context`, `question`, `answers` (`text`,
`answer_start`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from fsf.errors import FsfError

__all__ = ["HUB_MIRROR_ENV", "DataError", "label_names", "load_split", "resolve_dataset"]

HUB_MIRROR_ENV = "FSF_HUB_MIRROR"
"""Environment variable: a folder of local copies of hub dataset repositories."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")

log = logging.getLogger("fsf.tasks")

_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".tsv": "csv"}


class DataError(FsfError):
    """A dataset, language or split that cannot be loaded."""

    exit_code = 2


class _Split(NamedTuple):
    rows: tuple[dict[str, Any], ...]
    features: Any  # datasets.Features, or None for flattened SQuAD files


def resolve_dataset(dataset: str) -> str:
    """`synthetic:<task>` -> the shipped folder; a hub name -> its copy in `FSF_HUB_MIRROR`
    when that is set; anything else (a local path, a file template) is returned unchanged."""
    if dataset.startswith("synthetic:"):
        from fsf.synthetic import data_dir

        try:
            return str(data_dir(dataset.split(":", 1)[1]))
        except ValueError as exc:
            raise DataError(str(exc)) from None
    mirror = os.environ.get(HUB_MIRROR_ENV)
    if mirror and _HUB_ID.match(dataset) and not Path(dataset).exists():
        copy = Path(mirror) / dataset
        if not copy.is_dir():
            raise DataError(
                f"{HUB_MIRROR_ENV}={mirror} holds no copy of the hub dataset {dataset!r} "
                f"(expected the folder {copy}); download it there (hf download --repo-type "
                f"dataset {dataset} --local-dir {copy}) or unset {HUB_MIRROR_ENV}"
            )
        return str(copy)
    return dataset


def load_split(
    dataset: str, lang: str, split: str, config: str | None = "{lang}"
) -> list[dict[str, Any]]:
    """All examples of `lang`/`split` as a list of dicts (cached per process).

    `config` names the language's config on the hub (a template with `{lang}`); it is not
    used for file templates and single files.
    """
    return list(_load(resolve_dataset(dataset), lang, split, config).rows)


def label_names(
    dataset: str, lang: str, split: str, field: str, config: str | None = "{lang}"
) -> list[str] | None:
    """The class names of `field` (a ClassLabel, or a list of them) as the dataset declares
    them, or None when it declares none (plain ints or strings)."""
    import datasets

    feature = (_load(resolve_dataset(dataset), lang, split, config).features or {}).get(field)
    while feature is not None and not isinstance(feature, datasets.ClassLabel):
        feature = getattr(feature, "feature", None)
    return list(feature.names) if feature is not None else None


def _is_template(dataset: str) -> bool:
    return "{lang}" in dataset or "{split}" in dataset


def _is_file(dataset: str) -> bool:
    return Path(dataset).suffix.lower() in _BUILDERS and Path(dataset).is_file()


@lru_cache(maxsize=256)
def _load(dataset: str, lang: str, split: str, config: str | None) -> _Split:
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    name = config.format(lang=lang) if config is not None else None
    what = f"{lang}, {split}" + (f", config {name!r}" if name and name != lang else "")
    log.info("loading %s (%s)", dataset, what)
    try:
        if _is_template(dataset) or _is_file(dataset):
            path = dataset.format(lang=lang, split=split) if _is_template(dataset) else dataset
            if not Path(path).is_file():
                raise DataError(
                    f"no data file for language {lang!r}, split {split!r}: {path} does not exist "
                    f"(from the template {dataset!r})"
                )
            return _read_file(Path(path))
        kwargs = {"cache_dir": _local_cache_dir(Path(dataset))} if Path(dataset).is_dir() else {}
        ds = datasets.load_dataset(dataset, name=name, split=split, **kwargs)
    except DataError:
        raise
    except ValueError as exc:
        text = str(exc)
        if "BuilderConfig" in text or ("config" in text.lower() and (name or lang) in text):
            raise DataError(
                f"dataset {dataset!r} has no language {lang!r}"
                + (f" (config {name!r})" if name != lang else "")
                + f" ({_short(text)}); check source_lang / target_langs and task.config_name"
            ) from None
        if "split" in text.lower():
            raise DataError(
                f"dataset {dataset!r} ({what}) has no split {split!r} ({_short(text)}); "
                "check task.splits"
            ) from None
        raise DataError(f"cannot load dataset {dataset!r} ({what}): {_short(text)}") from None
    except (FileNotFoundError, ConnectionError, OSError) as exc:
        offline = " (this machine is offline: use a local copy)" if _offline() else ""
        raise DataError(
            f"cannot load dataset {dataset!r} ({what}){offline}: {_short(str(exc))}"
        ) from None
    except RuntimeError as exc:
        if "scripts are no longer supported" in str(exc):
            raise DataError(
                f"cannot load dataset {dataset!r} ({what}): the repository holds a loading "
                "script, which datasets >= 4 no longer runs; use a copy of its data files "
                "(Parquet, JSON) as task.dataset, or a repository that has them (MLQA: "
                "google/xtreme, configs MLQA.<lang>.<lang>; docs/tasks.md)"
            ) from None
        raise DataError(
            f"cannot load dataset {dataset!r} ({what}): {type(exc).__name__}: {_short(str(exc))}"
        ) from None
    except Exception as exc:  # datasets raises many private error types
        raise DataError(
            f"cannot load dataset {dataset!r} ({what}): {type(exc).__name__}: {_short(str(exc))}"
        ) from None
    return _Split(tuple(ds.to_list()), ds.features)


def _local_cache_dir(folder: Path) -> str:
    """A `datasets` cache folder of its own for a local hub-layout folder, keyed by the files'
    paths, sizes and modification times.

    `datasets` (5.2) keys the cache of a folder whose README declares configs by the folder's
    *name* and the config, not by its path or contents: a second folder with the same name
    (`.../v2/mlqa`), or the same folder regenerated, would silently get the first one's data.
    """
    import hashlib

    import datasets

    h = hashlib.sha256(str(folder.resolve()).encode())
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts):
            st = f.stat()
            h.update(f"{f.relative_to(folder).as_posix()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "fsf-local" / h.hexdigest()[:20])


def _read_file(path: Path) -> _Split:
    import datasets

    suffix = path.suffix.lower()
    if suffix not in _BUILDERS:
        raise DataError(f"{path}: unsupported file type; use one of {sorted(_BUILDERS)}")
    if suffix == ".json":
        rows = _squad_rows(path)
        if rows is not None:
            return _Split(rows, None)
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    ds = datasets.load_dataset(
        _BUILDERS[suffix], data_files={"data": str(path)}, split="data", **kwargs
    )
    return _Split(tuple(ds.to_list()), ds.features)


def _squad_rows(path: Path) -> tuple[dict[str, Any], ...] | None:
    """The rows of a file in the original SQuAD / MLQA format, or None if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # JSON lines, or not JSON at all: the json builder reports it
    if not (
        isinstance(data, dict)
        and isinstance(data.get("data"), list)
        and all(isinstance(a, dict) and "paragraphs" in a for a in data["data"])
    ):
        return None
    rows = []
    try:
        for article in data["data"]:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    answers = qa.get("answers", [])
                    rows.append(
                        {
                            "id": str(qa["id"]),
                            "title": article.get("title", ""),
                            "context": para["context"],
                            "question": qa["question"],
                            "answers": {
                                "text": [a["text"] for a in answers],
                                "answer_start": [int(a["answer_start"]) for a in answers],
                            },
                        }
                    )
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: malformed SQuAD-format file (missing {exc})") from None
    return tuple(rows)


def _offline() -> bool:
    return (
        os.environ.get("HF_HUB_OFFLINE", "") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    )


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
