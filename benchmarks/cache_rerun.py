"""Cold vs cached re-run of `kedro run --pipeline=unlearn` on the embedded default.

Runs the project twice in a fresh temporary copy (its own data/ and MLflow store): once from
nothing, once with nothing changed. Prints both times, their ratio (the target is < 0.1) and
each stage's share of each run, read back from the run's own MLflow records (the seconds of
every node that ran; the rest of the wall time is Kedro start-up, cache checks and tracking),
and saves them as JSON. Usage: ``python benchmarks/cache_rerun.py [--env ENV] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow

from mape_unlearn.tracking.lineage import CACHE_TAG, SESSION_TAG, STAGE_TAG

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))  # this environment's, activated or not
EXPERIMENT = "mape-unlearn"  # conf/base/mlflow.yml


def timed_run(project: Path, env: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [KEDRO, "run", "--pipeline=unlearn", f"--env={env}"],
        cwd=project,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "KEDRO_DISABLE_TELEMETRY": "true",
            "MLFLOW_TRACKING_URI": store(project),
        },
    )
    return time.perf_counter() - start


def store(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def stage_seconds(project: Path) -> dict[str, dict[str, float | str]]:
    """Per stage of the newest run: seconds its nodes ran (0 when reused) and cache status."""
    client = mlflow.MlflowClient(store(project))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    session = next(run.data.tags[SESSION_TAG] for run in runs if STAGE_TAG in run.data.tags)
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.{SESSION_TAG} = '{session}'"
    )
    return {
        run.data.tags[STAGE_TAG]: {
            "seconds": sum(v for k, v in run.data.metrics.items() if k.startswith("seconds/")),
            "cache": run.data.tags.get(CACHE_TAG, ""),
        }
        for run in children
        if STAGE_TAG in run.data.tags
    }


def profile(project: Path, env: str) -> dict:
    wall = timed_run(project, env)
    stages = stage_seconds(project)
    nodes = sum(float(stage["seconds"]) for stage in stages.values())
    return {
        "seconds": wall,
        "stages": {
            name: {**stage, "share": float(stage["seconds"]) / wall}
            for name, stage in stages.items()
        },
        "outside_nodes": {"seconds": wall - nodes, "share": (wall - nodes) / wall},
    }


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
        cold = profile(project, args.env)
        warm = profile(project, args.env)
    result = {
        "env": args.env,
        "cold_seconds": cold["seconds"],
        "warm_seconds": warm["seconds"],
        "ratio": warm["seconds"] / cold["seconds"],
        "cold": cold,
        "warm": warm,
    }
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
