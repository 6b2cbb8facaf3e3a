"""The shipped artefacts: reproducible data, a loadable checkpoint that can be fine-tuned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fsf.synthetic as synth
from fsf.synthetic.build import sha256
from fsf.synthetic.data import TASKS, pretraining_corpus, write_corpus, write_task
from fsf.synthetic.world import World

pytestmark = pytest.mark.skipif(
    not (synth.assets_dir() / "manifest.json").is_file(), reason="no shipped assets"
)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return synth.manifest()


def test_manifest_hashes_match_the_shipped_files(manifest: dict) -> None:
    root = synth.assets_dir()
    for rel, digest in manifest["files"].items():
        assert sha256(root / rel) == digest, rel
    shipped = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert shipped == set(manifest["files"])
    assert sum((root / rel).stat().st_size for rel in shipped) <= 10 * 2**20


@pytest.mark.parametrize("task", list(TASKS))
def test_shipped_data_is_what_the_generator_produces(
    task: str, manifest: dict, tmp_path: Path
) -> None:
    world = World(manifest["seed"])
    for path in write_task(world, task, tmp_path / "data" / task):
        rel = path.relative_to(tmp_path).as_posix()
        assert sha256(path) == manifest["files"][rel], rel


def test_shipped_corpus_is_what_the_generator_produces(manifest: dict, tmp_path: Path) -> None:
    path = write_corpus(list(pretraining_corpus(World(manifest["seed"]))), tmp_path / "c.gz")
    assert sha256(path) == manifest["files"]["corpus/pretrain.txt.gz"]


def test_checkpoint_loads_like_xlm_roberta(manifest: dict) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(synth.model_dir())
    model = AutoModelForSequenceClassification.from_pretrained(synth.model_dir(), num_labels=2)
    assert model.config.model_type == "xlm-roberta"
    assert model.config.num_hidden_layers == manifest["model"]["pretrain_config"]["num_layers"]
    assert model.config.max_position_embeddings == tok.model_max_length + 2
    assert model.config.pad_token_id == tok.pad_token_id == 1
    rec = json.loads((synth.data_dir("pawsx") / "fr" / "test.jsonl").open().readline())
    enc = tok(rec["sentence1"], rec["sentence2"], return_tensors="pt")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"][0])
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and "<unk>" not in tokens
    n1 = len(rec["sentence1"].split())
    assert tokens[n1 + 1 : n1 + 3] == ["</s>", "</s>"]
    with torch.no_grad():
        assert model(**enc).logits.shape == (1, 2)


def test_shipped_data_loads_with_datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = datasets.load_dataset(
        str(synth.data_dir("topic")), name="ja", split="test", cache_dir=str(tmp_path)
    )
    assert ds.num_rows == TASKS["topic"].test and ds.features["label"].num_classes == 4


def test_short_finetuning_beats_chance_on_the_source_language() -> None:
    from fsf.synthetic.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(task="topic", lr=1e-3, steps=80, eval_every=80)
    result = finetune(synth.model_dir(), synth.data_dir("topic"), cfg)
    assert result.final["en"] >= 0.5  # chance is 0.25


# docs/synthetic.md: DF's best peak lr on the shipped world (sweeps/world.yaml) and the
# floor its gap stays above. Measured at 5e-4: 12.6 +- 1.5 points at the last step over
# seeds 0-2 (11.0 +- 4.0 at the source-dev checkpoint); the floor leaves room for noise.
BEST_DF_LR = 5e-4
GAP_FLOOR = 0.05


@pytest.mark.slow
def test_df_at_its_best_lr_leaves_a_gap_with_low_resource_languages_trailing(
    tmp_path: Path,
) -> None:
    """The v2 world's reason to exist: at DF's own best learning rate the targets trail the
    source by more than the floor (the v1 world's gap vanished there), and the low-resource
    languages trail most. The project's own worker, the default space's base config; one
    seed (seed 1 gave the same verdict; docs/synthetic.md measures seeds 0-2)."""
    seed = 0
    from fsf.config import validate_run_config
    from fsf.synthetic.world import RESOURCES
    from fsf.train import train

    cfg = validate_run_config(
        {
            "name": f"gap-{seed}",
            "seed": seed,
            "model": {"name": "synthetic", "max_length": 64},
            "task": {"name": "classification", "dataset": "synthetic:topic",
                     "text_fields": ["text"], "num_labels": 4},
            "target_langs": [lang for lang in RESOURCES if lang != "en"],
            "policy": {"name": "df"},
            "optim": {"lr": BEST_DF_LR, "batch_size": 32, "max_steps": 300, "warmup_ratio": 0.1},
            "eval": {"every_steps": 300, "at_start": False, "splits": ["test"]},
            "analysis": {"loss_curve": False},
            "output_dir": str(tmp_path),
        }
    )  # fmt: skip
    final = train(cfg).final
    assert final is not None
    test = {lang: final.score("test", lang) for lang in cfg.languages}
    assert test["en"] >= 0.85
    assert final.gap("test") > GAP_FLOOR, test
    by_level: dict[str, list[float]] = {}
    for lang in cfg.target_langs:
        by_level.setdefault(RESOURCES[lang].level, []).append(test[lang])
    mean = {level: sum(v) / len(v) for level, v in by_level.items()}
    assert mean["low"] < mean["mid"] and mean["low"] < mean["high"], test
