"""What each stage costs on a real LLM: seconds, peak memory, optimizer state.

Runs ``kedro run --env=ENV --pipeline=STAGE`` for each stage in order, each in its own process
under ``/usr/bin/time -v`` (its wall time and peak resident memory), in this project with its
data root and MLflow store: each stage runs only its own nodes, the upstream ones being cached.
Then reads the seconds of every node that ran from the run's MLflow records and the unlearning
costs (trainable weights, optimizer state) from the evaluation's metrics, and writes one JSON
file and one Markdown table. ``--no-run`` summarises the timing files already in ``--out``
(``time_<stage>.txt``); each call updates the stages it names in ``stage_costs.json``. Usage::

    python benchmarks/llm_stage_costs.py --env smollm2_people --out benchmarks/smollm2_people
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow

from mape_unlearn.tracking.lineage import CACHE_TAG, STAGE_TAG

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))
EXPERIMENT = "mape-unlearn"  # conf/base/mlflow.yml
STAGES = ("data_prep", "train", "importance", "mask_search", "unlearn", "evaluate")


def run_stage(env: str, stage: str, out: Path) -> None:
    log = (out / f"log_{stage}.txt").open("w")
    subprocess.run(
        ["/usr/bin/time", "-v", "-o", str(out / f"time_{stage}.txt"), KEDRO, "run",
         f"--env={env}", f"--pipeline={stage}"],
        cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip


def process_cost(path: Path) -> dict[str, float]:
    """Wall seconds and peak resident memory (GB) of one ``/usr/bin/time -v`` report."""
    text = path.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", text)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    peak_kb = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {"wall_seconds": 3600 * hours + 60 * minutes + seconds, "peak_rss_gb": peak_kb / 2**20}


def node_seconds(stage: str) -> dict[str, float]:
    """Seconds of each node of ``stage``'s newest MLflow record in which its nodes ran."""
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.{STAGE_TAG} = '{stage}' AND tags.{CACHE_TAG} = 'ran'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    metrics = runs[0].data.metrics if runs else {}
    return {k.removeprefix("seconds/"): v for k, v in metrics.items() if k.startswith("seconds/")}


def unlearning_costs(env: str) -> dict[str, dict[str, float]]:
    """Per unlearned model: steps, seconds, trainable weights and optimizer state (MB)."""
    root = ROOT / "data" / env if env != "local" else ROOT / "data"  # conf/<env>/globals.yml
    metrics = json.loads((root / "08_reporting" / "evaluation_metrics.json").read_text())
    keys = ("steps_to_matched_forgetting", "seconds", "trainable_parameters", "optimizer_state_mb")
    return {
        model: {key: values["cost"].get(key) for key in keys}
        for model, values in metrics.items()
        if values.get("cost")
    }


def markdown(stages: dict[str, dict], costs: dict[str, dict]) -> str:
    rows = ["| stage | wall s | peak RSS GB | slowest nodes (s) |", "|---|---:|---:|---|"]
    for stage, cost in stages.items():
        slowest = sorted(cost["nodes"].items(), key=lambda item: -item[1])[:3]
        named = ", ".join(f"{name} {seconds:.0f}" for name, seconds in slowest)
        rows.append(
            f"| {stage} | {cost['wall_seconds']:.0f} | {cost['peak_rss_gb']:.1f} | {named} |"
        )
    rows += ["", "| unlearned model | steps | seconds | trainable weights | optimizer MB |"]
    rows.append("|---|---:|---:|---:|---:|")
    for model, cost in costs.items():
        cells = [f"{cost[k]:.0f}" if cost[k] is not None else "-" for k in cost]
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="smollm2_people")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "smollm2_people")
    parser.add_argument("--stages", nargs="*", default=list(STAGES), choices=STAGES)
    parser.add_argument("--no-run", action="store_true", help="summarise existing timings")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "stage_costs.json"
    stages = json.loads(saved.read_text())["stages"] if saved.exists() else {}  # other stages
    for stage in args.stages:
        if not args.no_run:
            run_stage(args.env, stage, args.out)
        stages[stage] = {
            **process_cost(args.out / f"time_{stage}.txt"),
            "nodes": node_seconds(stage),
        }
    stages = {stage: stages[stage] for stage in STAGES if stage in stages}
    costs = unlearning_costs(args.env) if "evaluate" in stages else {}
    result = {"env": args.env, "stages": stages, "unlearning": costs}
    saved.write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "stage_costs.md").write_text(markdown(stages, costs))
    print(markdown(stages, costs))


if __name__ == "__main__":
    main()
