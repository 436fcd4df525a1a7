"""Cold vs cached re-run of `kedro run --pipeline=unlearn` on the embedded default.

Runs the project twice in a fresh temporary copy (its own data/ and MLflow store): once from
nothing, once with nothing changed. Prints both times and their ratio (the target is < 0.1) and
saves them as JSON. Usage: ``python benchmarks/cache_rerun.py [--env ENV] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(project: Path, env: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["kedro", "run", "--pipeline=unlearn", f"--env={env}"],
        cwd=project,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "KEDRO_DISABLE_TELEMETRY": "true",
            "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        },
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="Kedro environment (default: local)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cache_rerun.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
        (project / "conf" / "local").mkdir()
        shutil.copy(ROOT / "pyproject.toml", project)
        (project / "src").mkdir()  # the package is imported from the installed project
        cold = timed_run(project, args.env)
        warm = timed_run(project, args.env)
    result = {"env": args.env, "cold_seconds": cold, "warm_seconds": warm, "ratio": warm / cold}
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
