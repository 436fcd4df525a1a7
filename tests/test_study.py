"""The `study` pipeline as a CI smoke test: one run, two variants, the small `conf/test` models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from PIL import Image
from transformers import AutoTokenizer

from mape_unlearn.caching import CachingRunner
from mape_unlearn.core.method.search import budget
from mape_unlearn.pipeline_registry import register_pipelines
from mape_unlearn.settings import config_loader
from tests.conftest import copy_project

FIGURE_INCHES = (14, 6)  # plot_study's figsize (pipelines/study/plots.py)


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("study"))
    study = project / "conf" / "base" / "parameters_study.yml"
    params = yaml.safe_load(study.read_text())
    params["study_runs"] = {"seed_3": {"forget_seed": 3}}  # one deletion request
    study.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
        patch.setenv("KEDRO_ENV", "test")
        bootstrap_project(project)
        nodes = {node.name for node in register_pipelines()["study"].nodes}
        with KedroSession.create(project_path=project, env="test") as session:
            session.run(pipeline_name="study", runner=CachingRunner())
    assert {"study_seed_3.retrain.fit", "study_seed_3.study_variants", "study_report"} <= nodes
    return project


def test_study_measures_every_variant_at_matched_forgetting(studied: Path):
    reporting = studied / "data" / "08_reporting" / "study"
    results = pd.read_csv(reporting / "results.csv")
    variants = ["mape", "sa_stop_em", "mape_holdout_answer"]  # conf/test's variants
    assert list(results.variant) == ["retrain", *variants]  # the reference's row first
    assert set(results.run) == {3}
    summary = pd.read_csv(reporting / "summary.csv")
    assert set(summary.variant) == {"retrain", *variants}
    assert (reporting / "summary.md").read_text().count("\n") == 2 + 4
    # the frontier figure: a PNG of the figure's size at the catalog's dpi, with coloured marks
    # (points, lines) in both panels (3:2 wide) besides the black and grey of axes and text
    dpi = config_loader(studied / "conf", env="test")["catalog"]["study_plot"]["save_args"]["dpi"]
    with Image.open(reporting / "frontier.png") as image:
        assert image.format == "PNG"
        assert image.size == (FIGURE_INCHES[0] * dpi, FIGURE_INCHES[1] * dpi)
        pixels = np.asarray(image.convert("RGB")).astype(int)
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    width = coloured.shape[1]
    assert coloured[:, : int(0.55 * width)].any() and coloured[:, int(0.65 * width) :].any()

    # the run's request is its own (seed 3), not the main forget split
    forget = pd.read_parquet(
        studied / "data" / "03_primary" / "study" / "seed_3_forget_split.parquet"
    )
    main = pd.read_parquet(studied / "data" / "03_primary" / "training_split.parquet")
    assert set(forget.person_id) < set(main.person_id)

    variants = json.loads(
        (studied / "data" / "07_model_output" / "study" / "seed_3_variants.json").read_text()
    )
    retrain, mape, sa, holdout = variants
    assert retrain["variant"] == "retrain" and "trace" not in retrain
    # the holdout-target variant stops at the original's level on the holdout people
    assert holdout["target_forget_accuracy"] != mape["target_forget_accuracy"]
    # the exact-match variant traces whole answers: shares of the forget rows
    rows = len(forget)
    assert all(
        abs(e["forget_accuracy"] * rows - round(e["forget_accuracy"] * rows)) < 1e-6
        for e in sa["trace"]
        if "forget_accuracy" in e
    )
    # trainable weights: the selected modules' own weights, or the saliency budget of all weights
    expected = _trainable_weights(studied)
    for row in (mape, sa, holdout):
        assert row["trainable_parameters"] == expected[row["variant"]], row["variant"]
    for row in variants[1:]:
        if row["reached_target"]:
            assert row["steps_to_matched_forgetting"] <= row["steps"]


def _trainable_weights(project: Path) -> dict[str, int]:
    """Each variant's trainable weights, counted by hand from the configured GPT-2 (tied
    embeddings, no grouped K/V) and the tokenizer's vocabulary.

    A module mask owns, per head, its Q, K and V columns of ``c_attn`` with their biases and its
    rows of ``attn.c_proj``; per filter, its column of ``c_fc`` with its bias and its row of
    ``mlp.c_proj`` (core/method/architectures.py), and selects ``budget(count, sparsity)`` of
    each type. ``sa`` selects ``budget(weights, sparsity)`` of all the model's weights.
    """
    params: dict[str, Any] = config_loader(project / "conf", env="test")["parameters"]
    search, train = params["mask_search"], params["train"]
    assert train["model_type"] == "gpt2" and train["original"] == "trained"
    assert (search["modules"], search["budget_in"]) == ("both", "modules")
    arch = train["architecture"]
    d, inner, layers, heads = arch["n_embd"], arch["n_inner"], arch["n_layer"], arch["n_head"]
    head_dim = d // heads
    vocab = len(AutoTokenizer.from_pretrained(project / "data" / "04_feature" / "tokenizer"))
    per_head = 3 * (d * head_dim + head_dim) + head_dim * d
    per_filter = (d + 1) + d
    sparsity = search["sparsity"]
    modules = (
        budget(layers * heads, sparsity) * per_head + budget(layers * inner, sparsity) * per_filter
    )
    attention = (d * 3 * d + 3 * d) + (d * d + d)  # c_attn, attn.c_proj
    ffn = (d * inner + inner) + (inner * d + d)  # c_fc, mlp.c_proj
    block = 2 * (2 * d) + attention + ffn  # and ln_1, ln_2
    # wte (tied to lm_head) and wpe, the blocks, ln_f
    weights = (vocab + arch["n_positions"]) * d + layers * block + 2 * d
    return {
        "mape": modules,
        "mape_holdout_answer": modules,
        "sa_stop_em": budget(weights, sparsity),
    }
