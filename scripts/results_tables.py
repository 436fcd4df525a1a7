"""The study's results tables for docs/, regenerated from the study outputs, never copied by hand.

Reads the ``results.csv`` of one or more study output folders (``data/08_reporting/study`` of a
run, or its copy under docs/), each folder one original model or configuration: its name
becomes the rows' ``original`` column, so runs pair by (original, run). Writes the summary
(mean ± sd per variant over every run) and the paired table (each variant against the module
mask, docs/evaluation.md, "How the study ranks") to one Markdown file. Both come from the
study's own report node, so the file holds what ``kedro run --pipeline=study`` computes.

Usage: ``python scripts/results_tables.py docs/study_default docs/study_seed1 --out
docs/study_tables.md`` (a folder or its results.csv).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from mape_unlearn.pipelines.study.nodes import study_report


def read_results(sources: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Each source's rows by its folder's name, with that name as their ``original``."""
    files = [source / "results.csv" if source.is_dir() else source for source in sources]
    names = [file.parent.name for file in files]
    if len(set(names)) < len(names):
        raise ValueError(
            f"sources={[str(s) for s in sources]}: two folders share a name, which names the "
            "original of their rows; give folders with distinct names"
        )
    return {
        name: pd.read_csv(file).assign(original=name).to_dict("records")
        for name, file in zip(names, files, strict=True)
    }


def tables(sources: list[Path]) -> str:
    """The Markdown file: where the figures come from, the summary and the paired table."""
    _, _, summary, _, paired = study_report(**read_results(sources))
    listed = ", ".join(f"`{source}`" for source in sources)
    return (
        f"<!-- written by scripts/results_tables.py from {listed}; rerun it, do not edit -->\n\n"
        "### Mean ± sd over runs, per variant\n\n"
        f"{summary}\n"
        "### Each variant against the module mask (`mape`), paired by request\n\n"
        "The mean over runs of the variant's value minus the module mask's on the same request "
        "(MIA AUC: of their distances to the retrain model's), its bootstrap 95 % interval and "
        "how often the module mask did better, the same or worse.\n\n"
        f"{paired}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="study output folders or CSVs")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown file to write")
    args = parser.parse_args(argv)
    args.out.write_text(tables(args.sources))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
