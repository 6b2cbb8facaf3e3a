"""Local copies of the hub repositories fsf's tasks load by name, laid out as each
repository is (the `hub_mirror` half of `fsf.testing`; docs in `fsf.testing`)."""

from __future__ import annotations

import random
from pathlib import Path

from fsf.testing._assets import (
    _LANGS,
    _SPLITS,
    NER_TAGS,
    XNLI_LABELS,
    _ner_rows,
    _pair_rows,
    _qa_example,
    _write_parquet,
)

__all__ = ["HUB_REPOS", "hub_mirror"]

HUB_REPOS = (
    "facebook/xnli",
    "google-research-datasets/paws-x",
    "google/xtreme",
    "unimelb-nlp/wikiann",
    "google/xquad",
    "rajpurkar/squad",
)


def _hub_features(kind: str):
    """The features the hub repositories declare (their READMEs' `dataset_info`)."""
    import datasets

    v, seq = datasets.Value, datasets.List
    if kind == "xnli":
        return datasets.Features(
            {
                "premise": v("string"),
                "hypothesis": v("string"),
                "label": datasets.ClassLabel(names=list(XNLI_LABELS)),
            }
        )
    if kind == "pawsx":
        return datasets.Features(
            {
                "id": v("int32"),
                "sentence1": v("string"),
                "sentence2": v("string"),
                "label": datasets.ClassLabel(names=["0", "1"]),
            }
        )
    if kind in ("panx", "wikiann"):
        features = {
            "tokens": seq(v("string")),
            "ner_tags": seq(datasets.ClassLabel(names=list(NER_TAGS))),
            "langs": seq(v("string")),
        }
        if kind == "wikiann":
            features["spans"] = seq(v("string"))
        return datasets.Features(features)
    answers = (
        {"answer_start": seq(v("int32")), "text": seq(v("string"))}  # google/xtreme's order
        if kind == "mlqa"
        else {"text": seq(v("string")), "answer_start": seq(v("int32"))}
    )
    base = {"id": v("string")}
    if kind != "xquad":
        base["title"] = v("string")
    return datasets.Features(
        {**base, "context": v("string"), "question": v("string"), "answers": answers}
    )


def _write_hub_repo(
    root: Path, configs: dict[str, tuple[object, dict[str, list[dict]]]], default: str | None
) -> Path:
    """One repository: `<config>/<split>-00000-of-00001.parquet` per config and split, and a
    README whose YAML declares `dataset_info` and `configs` as the hub's converted
    repositories do (`data_files` globs `<config>/<split>-*`)."""
    import datasets
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    infos, metadata = {}, {}
    for config, (features, splits) in configs.items():
        split_dict = SplitDict()
        files = []
        for split, rows in splits.items():
            _write_parquet(rows, features, root / config / f"{split}-00000-of-00001.parquet")
            split_dict.add(SplitInfo(name=split, num_examples=len(rows)))
            files.append({"split": split, "path": f"{config}/{split}-*"})
        infos[config] = DatasetInfo(features=features, splits=split_dict, config_name=config)
        metadata[config] = {"data_files": files, **({"default": True} if config == default else {})}
    card = DatasetCardData()
    DatasetInfosDict(infos).to_dataset_card_data(card)
    MetadataConfigs(metadata).to_dataset_card_data(card)
    (root / "README.md").write_text(f"---\n{card.to_yaml()}\n---\n# mirror made by fsf.testing\n")
    del datasets
    return root


def hub_mirror(
    root: str | Path,
    repos: tuple[str, ...] = HUB_REPOS,
    langs: tuple[str, ...] = _LANGS,
    sizes: tuple[int, int, int] = (32, 12, 12),
    seed: int = 0,
) -> Path:
    """Local copies of hub dataset repositories under `root/<owner>/<name>`, each in that
    repository's layout; returns `root` (the value for `FSF_HUB_MIRROR`).

    `google/xtreme` gets `PAN-X.<lang>` (train / validation / test) and `MLQA.<c>.<q>` for
    every pair of `langs` (validation / test; cross-lingual pairs hold other examples, so a
    wrong config is noticed); `google/xquad` gets `xquad.<lang>` with `validation` only;
    `rajpurkar/squad` one config, `plain_text` (train / validation) in English. `sizes` are
    (train, validation, test) per language.
    """
    root = Path(root)
    rng = random.Random(seed)
    n = dict(zip(_SPLITS, sizes, strict=True))
    for repo in repos:
        configs: dict[str, tuple[object, dict[str, list[dict]]]] = {}
        default = None
        if repo in ("facebook/xnli", "google-research-datasets/paws-x"):
            kind = "xnli" if repo == "facebook/xnli" else "pawsx"
            for lang in langs:
                configs[lang] = (
                    _hub_features(kind),
                    {s: _pair_rows(rng, lang, n[s], kind) for s in ("train", "test", "validation")},
                )
        elif repo == "unimelb-nlp/wikiann":
            for lang in langs:
                splits = {s: _ner_rows(rng, lang, n[s]) for s in ("validation", "test", "train")}
                for rows in splits.values():
                    for r in rows:
                        r["spans"] = []
                configs[lang] = (_hub_features("wikiann"), splits)
        elif repo == "google/xtreme":
            for c in langs:
                for q in langs:
                    splits = {
                        s: [
                            _qa_example(rng, c, rng.randrange(8, 40), f"{s}-{c}-{q}-{i}")
                            for i in range(n[s])
                        ]
                        for s in ("test", "validation")
                    }
                    configs[f"MLQA.{c}.{q}"] = (_hub_features("mlqa"), splits)
            for lang in langs:
                configs[f"PAN-X.{lang}"] = (
                    _hub_features("panx"),
                    {s: _ner_rows(rng, lang, n[s]) for s in ("validation", "test", "train")},
                )
        elif repo == "google/xquad":
            for lang in langs:
                rows = [
                    {
                        k: v
                        for k, v in _qa_example(
                            rng, lang, rng.randrange(8, 40), f"x-{lang}-{i}"
                        ).items()
                        if k != "title"
                    }
                    for i in range(n["test"])
                ]
                configs[f"xquad.{lang}"] = (_hub_features("xquad"), {"validation": rows})
        elif repo == "rajpurkar/squad":
            lang = langs[0]
            configs["plain_text"] = (
                _hub_features("squad"),
                {
                    s: [
                        _qa_example(rng, lang, rng.randrange(8, 40), f"squad-{s}-{i}")
                        for i in range(n[s])
                    ]
                    for s in ("train", "validation")
                },
            )
            default = "plain_text"
        else:
            raise ValueError(f"no hub layout for {repo!r}; known: {', '.join(HUB_REPOS)}")
        _write_hub_repo(root / repo, configs, default)
    return root
