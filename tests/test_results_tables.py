"""The study's paired table and scripts/results_tables.py on a real tiny study (one run, the
`conf/test` models: tests/test_study.py's fixture)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import ROOT
from tests.test_study import studied  # noqa: F401  (the study, run once for this module)

SCRIPT = ROOT / "scripts" / "results_tables.py"
# the study's comparisons (core/evaluation/paired.py), then its robustness columns
COMPARED = ["forget_quality", "mia_auc_min_k", "retain_exact_match", "steps_to_matched_forgetting"]


def test_study_writes_the_paired_table(studied: Path):  # noqa: F811
    reporting = studied / "data" / "08_reporting" / "study"
    results = pd.read_csv(reporting / "results.csv").set_index("variant")
    paired = pd.read_csv(reporting / "paired.csv")
    robustness = [c for c in results.columns if c.startswith(("relearn_", "int8_", "int4_"))]
    assert robustness  # the quantization round trips (core/evaluation/quantization.py)
    assert list(paired.metric.unique()) == COMPARED + robustness
    assert set(paired.variant) == {"sa_stop_em", "mape_holdout_answer"}
    # one run: the difference is that run's, with no interval
    for row in paired.query("metric == 'forget_quality'").itertuples():
        expected = results.forget_quality[row.variant] - results.forget_quality["mape"]
        assert row.runs == 1 and np.isclose(row.mean_difference, expected)
        assert np.isnan(row.ci_low) and row.wins + row.ties + row.losses == 1
    mia = results.mia_auc_min_k
    row = paired.query("metric == 'mia_auc_min_k' and variant == 'sa_stop_em'").iloc[0]
    nearer = abs(mia["sa_stop_em"] - mia["retrain"]) - abs(mia["mape"] - mia["retrain"])
    assert np.isclose(row.mean_difference, nearer)
    assert (reporting / "paired.md").read_text().count("\n") == 2 + (paired.runs > 0).sum()


def test_script_regenerates_the_tables_from_two_originals(studied: Path, tmp_path: Path):  # noqa: F811
    """Two copies of the study's results as two originals: two pairs per variant, and a figure
    changed in one CSV changes the table."""
    results = pd.read_csv(studied / "data" / "08_reporting" / "study" / "results.csv")
    for name in ("original_a", "original_b"):
        (tmp_path / name).mkdir()
        results.to_csv(tmp_path / name / "results.csv", index=False)
    sources = [tmp_path / "original_a", tmp_path / "original_b" / "results.csv"]
    before = _tables(sources, tmp_path / "tables.md")
    assert "original_a" in before and "original_b" in before
    summary = _line(before, "| mape | ")
    assert summary.startswith("| mape | 2 | ")  # the summary pools both originals
    fq = results.set_index("variant").forget_quality
    same = fq["sa_stop_em"] - fq["mape"]
    line = _line(before, "| forget_quality | higher | sa_stop_em | ")
    assert line == f"| forget_quality | higher | sa_stop_em | 2 | {same:+.3g} | " + (
        f"[{same:+.3g}, {same:+.3g}] | {_counts([same, same])} |"
    )

    changed = results.copy()
    changed.loc[changed.variant == "sa_stop_em", "forget_quality"] = fq["mape"] + 0.5
    changed.to_csv(tmp_path / "original_b" / "results.csv", index=False)
    after = _tables(sources, tmp_path / "tables.md")
    mean = (same + 0.5) / 2
    line = _line(after, "| forget_quality | higher | sa_stop_em | ")
    assert line.startswith(f"| forget_quality | higher | sa_stop_em | 2 | {mean:+.3g} | ")
    assert line.endswith(f" | {_counts([same, 0.5])} |")
    assert _line(after, "| mape | ") == summary  # mape's own figures did not move


def _tables(sources: list[Path], out: Path) -> str:
    """The script's command line, run in this process (a fresh interpreter would import torch
    and Kedro again, 10-40 s), and the file it wrote."""
    spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main([*map(str, sources), "--out", str(out)])
    return out.read_text()


def _line(markdown: str, start: str) -> str:
    (line,) = [line for line in markdown.splitlines() if line.startswith(start)]
    return line


def _counts(differences: list[float]) -> str:
    """mape's wins / ties / losses on forget quality (higher is better) against these
    differences of the variant minus mape."""
    wins = sum(d < 0 for d in differences)
    ties = sum(d == 0 for d in differences)
    return f"{wins} / {ties} / {len(differences) - wins - ties}"
