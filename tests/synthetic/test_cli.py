"""The ``fsf-synth`` command line and the path API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import fsf.synthetic as synth
from fsf.cli.synthetic import main


def test_build_data_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "build"
    assert main(["build", "--data-only", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["model"] is None
    assert (out / "data" / "pawsx" / "fr" / "validation.jsonl").is_file()
    assert (out / "data" / "ner" / "fr" / "validation.jsonl.gz").is_file()
    assert manifest["tasks"]["qa"]["kind"] == "qa"
    assert (out / "corpus" / "pretrain.txt.gz").is_file()
    assert "wrote data" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "--out", "x", "--seed", "-1"],
        ["build", "--out", "x", "--steps", "0"],
        ["build", "--out", "x", "--steps", "many"],
        ["build"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_out_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("")
    assert main(["build", "--data-only", "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_console_entry_point_has_no_traceback() -> None:
    cmd = [sys.executable, "-m", "fsf.cli.synthetic", "build", "--out", "x", "--steps", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "--steps" in proc.stderr


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    if not (synth.assets_dir() / "manifest.json").is_file():
        pytest.skip("no shipped assets")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert str(synth.model_dir()) in out and str(synth.data_dir("pawsx")) in out
    assert f"{synth.data_dir('ner')}  tags=13" in out and "extractive QA" in out
    assert "languages en fk fr ja cy sw ur" in out and "12 layers" in out
    probes = synth.manifest()["model"]["topic_probe_unlinked"]
    assert "unlinked words: " + " ".join(f"{k} {v:.2f}" for k, v in probes.items()) in out


def test_path_api() -> None:
    assert synth.model_dir().parent == synth.assets_dir()
    assert synth.data_dir("topic") == synth.assets_dir() / "data" / "topic"
    assert synth.data_dir() == synth.data_dir(synth.DEFAULT_TASK)
    with pytest.raises(ValueError, match="valid tasks: topic, pawsx"):
        synth.data_dir("xnli")


def test_data_only_keeps_a_matching_checkpoint(tmp_path: Path) -> None:
    from fsf.synthetic.build import build, sha256

    manifest = build(tmp_path, seed=0, data_only=True)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    manifest["model"] = {"path": "model"}
    manifest["files"]["model/config.json"] = sha256(tmp_path / "model" / "config.json")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    kept = build(tmp_path, seed=0, data_only=True)
    assert kept["model"] == {"path": "model"} and "model/config.json" in kept["files"]
    other_seed = build(tmp_path, seed=1, data_only=True)
    assert other_seed["model"] is None and "model/config.json" not in other_seed["files"]
