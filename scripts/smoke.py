"""The floor job's smoke run (.ci/run): fsf's public commands on whatever stack this Python
holds. One small real sweep with a confirmation stage is SIGKILLed (with its local Ray
instance) once a trial's results are saved, `fsf resume` finishes it, search
and confirmation, then `fsf best` and `fsf show` answer from it. Exit 0 when every step did
what it must, 1 with the failing step's output otherwise.

    python scripts/smoke.py WORKDIR        # WORKDIR is made; about 2-3 minutes on 2 cores
    python scripts/smoke.py WORKDIR --resume-with OTHER/bin/python   # resumed on another stack
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_SPACE = """\
name: smoke
base:
  model: {name: synthetic, max_length: 64}
  task: {name: classification, dataset: "synthetic:topic", text_fields: [text], num_labels: 4,
         max_eval_examples: 96}
  source_lang: en
  target_langs: [fr, ja]
  optim: {max_steps: 16, batch_size: 16, lr: 0.001, warmup_ratio: 0.1}
  eval: {every_steps: 8, batch_size: 96}
search:
  parameters:
    policy.name: {type: categorical, values: [df, fsf]}
  objective: {metric: dev_target_mean, mode: max}
  searcher: grid
  max_concurrent: 1
  scheduler: {type: none}
  seeds: [0]
confirm: {top_k: 1, seeds: [7, 8], baseline: {policy.name: df}}
storage: {path: STORAGE}
"""


def _fsf(
    *args: str, env: dict[str, str], python: str = sys.executable
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "fsf", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        start_new_session=True,
    )


def _finished(sweep: Path) -> list[Path]:
    """The search's fragments of finished runs: what a resume reads back (fsf's own records,
    never Tune's state) and must not train again."""
    import pyarrow.parquet as pq

    done = []
    for path in (sweep / "results").glob("trial=*/seed-*.parquet"):
        try:
            status = pq.read_table(path, columns=["status"])["status"][0].as_py()
        except Exception:  # being rewritten
            continue
        if status == "completed":
            done.append(path)
    return done


def _fail(step: str, done: subprocess.CompletedProcess | None = None) -> int:
    print(f"smoke: FAILED at {step}", file=sys.stderr)
    if done is not None:
        print(
            f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", file=sys.stderr
        )
    return 1


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description="fsf's smoke run (scripts/smoke.py)")
    p.add_argument("workdir")
    p.add_argument(
        "--resume-with",
        metavar="PYTHON",
        default=sys.executable,
        help="resume (and query) with this Python, another environment's (another Ray)",
    )
    args = p.parse_args(argv)
    other = args.resume_with
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    space = work / "smoke.yaml"
    space.write_text(_SPACE.replace("STORAGE", str(work / "runs")))
    sweep = work / "runs" / "smoke"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    t0 = time.monotonic()

    # 1. the sweep, killed once a trial finished after a save of Tune's state
    sweep_cmd = ["sweep", "--space", str(space), "--no-progress", "--num-cpus", "2"]
    with (work / "sweep.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fsf", *sweep_cmd],
            env=env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            finished = _finished(sweep)
            if finished:
                break
            time.sleep(0.5)
        else:
            print((work / "sweep.log").read_text()[-3000:], file=sys.stderr)
            return _fail(f"the sweep (exit {proc.poll()} before a trial was saved)")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(1)
    kept = {p: p.read_bytes() for p in finished}
    print(f"smoke: sweep killed after {time.monotonic() - t0:.0f} s", flush=True)

    # 2. fsf resume: the search, then its confirmation
    done = _fsf("resume", str(sweep), "--no-progress", "--num-cpus", "2", env=env, python=other)
    if done.returncode != 0 or "confirmed configurations" not in done.stdout:
        return _fail("fsf resume", done)
    search = json.loads((sweep / "sweep.json").read_text())
    confirm = json.loads((sweep / "confirm" / "sweep.json").read_text())
    if not confirm.get("finished") or confirm.get("seeds") != [7, 8]:
        return _fail(f"the confirmation stage (sweep.json: {confirm})")
    if any(p.read_bytes() != b for p, b in kept.items()):
        return _fail("fsf resume: a run finished before the kill was trained again", done)
    notes = [x for x in done.stdout.splitlines() if x.startswith("note:")]
    print(f"smoke: resumed and confirmed after {time.monotonic() - t0:.0f} s", *notes, sep="\n")

    # 3. fsf best answers from the confirmation; fsf show prints the stack it ran on
    done = _fsf("best", str(sweep), "--per-language", "--format", "json", env=env, python=other)
    if done.returncode != 0 or json.loads(done.stdout)["stage"]["name"] != "confirm":
        return _fail("fsf best", done)
    done = _fsf("show", str(sweep), "--stage", "search", env=env, python=other)
    from importlib.metadata import version

    ray = version("ray")  # the driver that started the sweep
    if done.returncode != 0 or f"ray {ray}" not in done.stdout:
        return _fail(f"fsf show (no 'ray {ray}' in its provenance)", done)
    if other != sys.executable:
        print(done.stdout[done.stdout.find("driver:") :], flush=True)
    if search.get("provenance", {}).get("driver", {}).get("ray") != ray:
        return _fail(f"sweep.json's provenance ({search.get('provenance')})")
    print(f"smoke: passed in {time.monotonic() - t0:.0f} s (ray {ray})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
