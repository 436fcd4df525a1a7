"""A `kedro run --pipeline=unlearn` with nothing to do, against importing its libraries, same run.

The goal (issue 27): the no-op run takes at most 5 s or 1.3x the plain import of torch,
transformers, MLflow and Kedro (`python -c "import torch, transformers, mlflow, kedro"`),
whichever is larger. Both are timed in turns, ``--repeats`` times each, after one untimed
warm-up each, in a temporary copy of the project (its own data/ and MLflow store) after one full
run; ``--project DIR`` times an existing project instead, whose run is done. Wall-clock and CPU
seconds (user + system of the child) are recorded, medians and minima: on shared cores the
minimum is the figure least disturbed by the other jobs. Python writes its bytecode as an
installed package has it (``PYTHONPYCACHEPREFIX`` in the temporary folder when
``PYTHONDONTWRITEBYTECODE`` is set), so neither side compiles its sources on every start.
Usage: ``python benchmarks/noop.py [--env ENV] [--repeats N] [--project DIR] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))  # this environment's, activated or not
IMPORT = [sys.executable, "-c", "import torch, transformers, mlflow, kedro"]
GOAL_SECONDS, GOAL_RATIO = 5.0, 1.3  # issue 27: at most max(5 s, 1.3x the import)


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one command (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def figures(samples: list[tuple[float, float]]) -> dict[str, float]:
    walls, cpus = [wall for wall, _ in samples], [cpu for _, cpu in samples]
    return {
        "wall_median": statistics.median(walls),
        "wall_min": min(walls),
        "cpu_median": statistics.median(cpus),
        "cpu_min": min(cpus),
    }


def copy_project(path: Path) -> Path:
    """The project's configuration and pyproject.toml; the package is the installed one."""
    shutil.copytree(ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local"))
    (path / "conf" / "local").mkdir()
    shutil.copy(ROOT / "pyproject.toml", path)
    (path / "src").mkdir()
    return path


def measure(project: Path, env_name: str, repeats: int, fresh: bool, scratch: Path) -> dict:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    if fresh:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    run = [KEDRO, "run", "--pipeline=unlearn", f"--env={env_name}"]
    full = timed(run, project, env) if fresh else None
    timed(IMPORT, project, env)  # warm-up: bytecode written, files in the page cache
    timed(run, project, env)
    imports, noops = [], []
    for _ in range(repeats):  # in turns, so that both see the same load
        imports.append(timed(IMPORT, project, env))
        noops.append(timed(run, project, env))
    plain, noop = figures(imports), figures(noops)
    goal = max(GOAL_SECONDS, GOAL_RATIO * plain["wall_min"])
    return {
        "env": env_name,
        "repeats": repeats,
        "full_run_seconds": full[0] if full else None,
        "import": plain,
        "noop": noop,
        "ratio_wall_min": noop["wall_min"] / plain["wall_min"],
        "ratio_wall_median": noop["wall_median"] / plain["wall_median"],
        "ratio_cpu_median": noop["cpu_median"] / plain["cpu_median"],
        "goal_seconds": goal,
        "goal_met": noop["wall_min"] <= goal,
        "load_average_1min": os.getloadavg()[0],
        "cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="Kedro environment (default: local)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--project", type=Path, help="an existing project whose run is done")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = args.project is None
        project = copy_project(Path(tmp) / "project") if fresh else args.project.resolve()
        result = measure(project, args.env, args.repeats, fresh, Path(tmp))
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
