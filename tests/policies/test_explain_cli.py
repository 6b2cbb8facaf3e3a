import json

import pytest

from fsf.cli.policies import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_output_schema_and_values(capsys):
    code, out, _ = run(
        capsys, "explain", "--policy", "fsf", "--layers", "12", "--steps", "201", "--format", "json"
    )
    assert code == 0
    records = json.loads(out)
    assert [r["step"] for r in records] == list(range(1, 202))
    first, last = records[0], records[-1]
    assert set(first) == {"step", "phase", "phi", "cka_falling", "embeddings", "head", "layers"}
    assert first["cka_falling"] is None  # no recorded CKA curve given
    assert first["phase"] == "P1" and first["phi"] is None
    assert len(first["layers"]) == 12 and set(first["layers"][0]) == {"attention", "ffn", "other"}
    assert first["layers"][0] == {"attention": 0.01, "ffn": 0.01, "other": 0.01}
    assert first["layers"][10] == {"attention": 1.0, "ffn": 1.0, "other": 1.0}
    # the example loss 0.35 + 0.75 exp(-t/60) with the shipped spaces' window w = 20 and
    # threshold 0.1: P2 from iteration 76, where phi < 1, so S_II's K = 1 - phi^3 > 0
    import math

    from fsf.policies.explain import example_losses

    assert records[74]["phase"] == "P1" and records[75]["phase"] == "P2"
    losses = example_losses(201)
    phi = (sum(losses[181:201]) / 20) / (sum(losses[161:181]) / 20)
    assert math.isclose(last["phi"], phi) and 0.9 < phi < 1
    assert math.isclose(last["layers"][3]["ffn"], 1 - phi**3) and last["layers"][4]["ffn"] == 1.0
    assert last["layers"][11]["attention"] == 10.0


def test_losses_file_and_settings(capsys, tmp_path):
    losses = [2.0 - 0.1 * t for t in range(10)] + [1.0] * 10
    f = tmp_path / "loss.txt"
    f.write_text("\n".join(map(str, losses)))
    code, out, _ = run(
        capsys,
        "explain",
        "--policy",
        "fs",
        "--layers",
        "24",
        "--losses",
        str(f),
        "--set",
        "window=3",
        "--set",
        "c1=0.5",
        "--set",
        "r=1",
        "--format",
        "json",
    )
    assert code == 0
    records = json.loads(out)
    assert len(records) == 20
    assert (
        records[0]["layers"][19]["attention"] == 0.5 and records[0]["layers"][20]["attention"] == 1
    )
    p2 = [r for r in records if r["phase"] == "P2"]
    assert p2 and p2[0]["step"] > 10
    r = p2[-1]
    assert r["layers"][7]["ffn"] == pytest.approx(max(1 - r["phi"], 0))  # r = 1
    assert r["layers"][8]["ffn"] == 1.0  # layer 9 is outside S_II = FFN of 1-8


def test_step_switch_and_table_format(capsys):
    code, out, _ = run(
        capsys,
        "explain",
        "--policy",
        "fsf",
        "--layers",
        "6",
        "--steps",
        "10",
        "--set",
        "switch=step",
        "--set",
        "switch_step=4",
    )
    assert code == 0
    assert "1-4" in out and "5-10" in out and "P2" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--policy", "bogus", "--layers", "12", "--steps", "3"], "unknown policy"),
        (["--policy", "fsf", "--layers", "12", "--steps", "3", "--set", "c1=1.5"], "policy.c1"),
        (["--policy", "ff", "--layers", "12", "--steps", "3", "--set", "c2=1"], "policy.c2"),
        (
            ["--policy", "fsf", "--layers", "12", "--steps", "3", "--set", "sets.s1=1-13"],
            "policy.sets.s1",
        ),
        (["--policy", "fsf", "--layers", "0", "--steps", "3"], "--layers"),
        (["--policy", "fsf", "--layers", "12"], "--steps"),
        (["--policy", "fsf", "--layers", "12", "--losses", "/nonexistent"], "--losses"),
    ],
)
def test_bad_input_is_a_clear_error(capsys, argv, needle):
    code, out, err = run(capsys, "explain", *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err and out == ""


def test_list(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "noisytune" in out and "swap-v" in out
