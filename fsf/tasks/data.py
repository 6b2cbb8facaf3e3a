"""Loading a (language, split) of a dataset: from the hub, a local hub-layout folder, files.

Everything goes through `datasets.load_dataset`, so a local folder in the hub's layout (one
config per language, as `facebook/xnli` and `google-research-datasets/paws-x` have) takes
exactly the path that the hub dataset takes.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from fsf.errors import FsfError

__all__ = ["DataError", "load_split", "resolve_dataset"]

_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".tsv": "csv"}


class DataError(FsfError):
    """A dataset, language or split that cannot be loaded."""

    exit_code = 2


def resolve_dataset(dataset: str) -> str:
    """`synthetic:<task>` -> the shipped folder; anything else is returned unchanged."""
    if dataset.startswith("synthetic:"):
        from fsf.synthetic import data_dir

        return str(data_dir(dataset.split(":", 1)[1]))
    return dataset


def load_split(dataset: str, lang: str, split: str) -> list[dict[str, Any]]:
    """All examples of `lang`/`split` as a list of dicts (cached per process)."""
    return list(_load(resolve_dataset(dataset), lang, split))


@lru_cache(maxsize=256)
def _load(dataset: str, lang: str, split: str) -> tuple[dict[str, Any], ...]:
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        if "{lang}" in dataset or "{split}" in dataset:
            path = dataset.format(lang=lang, split=split)
            if not Path(path).is_file():
                raise DataError(
                    f"no data file for language {lang!r}, split {split!r}: {path} does not exist "
                    f"(from the template {dataset!r})"
                )
            suffix = Path(path).suffix.lower()
            if suffix not in _BUILDERS:
                raise DataError(f"{path}: unsupported file type; use one of {sorted(_BUILDERS)}")
            kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
            ds = datasets.load_dataset(
                _BUILDERS[suffix], data_files={"data": path}, split="data", **kwargs
            )
        else:
            ds = datasets.load_dataset(dataset, name=lang, split=split)
    except DataError:
        raise
    except ValueError as exc:
        text = str(exc)
        if "BuilderConfig" in text or ("config" in text.lower() and lang in text):
            raise DataError(
                f"dataset {dataset!r} has no language {lang!r} ({_short(text)}); check "
                "source_lang / target_langs"
            ) from None
        if "split" in text.lower():
            raise DataError(
                f"dataset {dataset!r} ({lang}) has no split {split!r} ({_short(text)}); "
                "check task.splits"
            ) from None
        raise DataError(
            f"cannot load dataset {dataset!r} ({lang}, {split}): {_short(text)}"
        ) from None
    except (FileNotFoundError, ConnectionError, OSError) as exc:
        offline = " (this machine is offline: use a local copy)" if _offline() else ""
        raise DataError(
            f"cannot load dataset {dataset!r} ({lang}, {split}){offline}: {_short(str(exc))}"
        ) from None
    except Exception as exc:  # datasets raises many private error types
        raise DataError(
            f"cannot load dataset {dataset!r} ({lang}, {split}): {type(exc).__name__}: "
            f"{_short(str(exc))}"
        ) from None
    return tuple(ds.to_list())


def _offline() -> bool:
    return (
        os.environ.get("HF_HUB_OFFLINE", "") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    )


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
