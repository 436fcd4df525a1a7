"""Pictures and kedro-viz: the plot nodes, their catalog entries, and the static site in a browser.

The browser test builds the site with ``kedro viz build`` in a temp project, serves it from
127.0.0.1 and opens it in headless Chromium (installed with apt-get when missing).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kedro_datasets.matplotlib import MatplotlibDataset

from mape_unlearn.pipeline_registry import STAGES, register_pipelines
from mape_unlearn.pipelines.mask_search.plots import plot_module_selection, plot_search_objective
from mape_unlearn.pipelines.unlearn.plots import plot_unlearning_losses
from tests.test_tracking import ENV, make_project, tracked_project

LAYERS = [
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
]
PLOTS = ("module_selection_plot", "search_objective_plot", "unlearning_loss_plot")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",  # lets the app fetch its data and lay the graph out
]


# ------------------------------------------------------------------ the plot nodes
def test_module_selection_plot_shows_the_masks():
    heads = torch.tensor([[True, False, False], [False, True, True]])
    filters = torch.zeros(2, 8, dtype=torch.bool)
    filters[0, :3] = True
    filters[1, 5] = True
    figure = plot_module_selection({"heads": heads, "filters": filters})
    heat_map, counts = figure.axes
    assert np.array_equal(heat_map.images[0].get_array(), heads.int().numpy())
    assert [bar.get_width() for bar in counts.patches] == [3, 1]
    assert "3 of 6" in heat_map.get_title()


def test_search_objective_plot_has_one_point_per_sweep():
    trace = [
        {"stage": "warm_start", "objective_heads": 0.1, "objective_filters": 0.2},
        {"stage": "sweep_1", "objective_heads": 0.3, "objective_filters": 0.5},
    ]
    lines = plot_search_objective(trace).axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[0.1, 0.3], [0.2, 0.5]]
    assert list(lines[0].get_xdata()) == [0, 1]


def test_unlearning_loss_plot_skips_steps_without_values():
    trace = [
        {"step": 1, "forget_loss": 0.1, "retain_loss": 0.2},
        {"step": 2, "forget_loss": 0.4, "retain_loss": 0.3, "forget_accuracy": 0.9},
        {"step": 3, "stopped_non_finite": 1.0},
    ]
    losses, accuracy = plot_unlearning_losses(trace).axes
    forget, retain = losses.get_lines()
    assert list(forget.get_xdata()) == [1, 2]
    assert list(forget.get_ydata()) == [0.1, 0.4]
    assert list(retain.get_ydata()) == [0.2, 0.3]
    assert list(accuracy.get_lines()[0].get_ydata()) == [0.9]


# ------------------------------------------------------------------ the temp project
@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("viz"))


def default_pipeline(project: Path) -> Pipeline:
    """``__default__`` as registered for the project's default environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.delenv("KEDRO_ENV", raising=False)
        return register_pipelines()["__default__"]


@pytest.fixture(scope="module")
def catalog(project: Path) -> Iterator[DataCatalog]:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(project / 'mlflow.db').as_posix()}")
        patch.delenv("KEDRO_ENV", raising=False)
        bootstrap_project(project)
        with KedroSession.create(project_path=project) as session:
            yield session.load_context().catalog
        mlflow.set_tracking_uri(None)


def test_every_dataset_has_a_layer(project: Path, catalog: DataCatalog):
    datasets = default_pipeline(project).datasets()
    layers = {
        name: ((catalog.get(name).metadata or {}).get("kedro-viz") or {}).get("layer")
        for name in sorted(datasets)
        if not name.startswith("params:")
    }
    assert {name: layer for name, layer in layers.items() if layer not in LAYERS} == {}


def test_plots_are_matplotlib_datasets_in_the_reporting_layer(catalog: DataCatalog, tmp_path):
    for name in PLOTS:
        dataset = catalog.get(name)
        assert isinstance(dataset, MatplotlibDataset), name
        assert dataset.metadata["kedro-viz"]["layer"] == "reporting"
    figure = plot_search_objective([{"objective_heads": 0.1, "objective_filters": 0.2}])
    MatplotlibDataset(filepath=str(tmp_path / "plot.png")).save(figure)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ kedro viz build + browser
def viz_build(project: Path, *options: str, **env: str) -> subprocess.CompletedProcess:
    """``kedro viz build`` in ``project``: a static site under ``build/``."""
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", **env}
    if "KEDRO_ENV" not in env:
        environment.pop("KEDRO_ENV", None)
    return subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build", *options],
        cwd=project,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(project: Path) -> Path:
    """The static site of the temp project (no run needed: no previews)."""
    viz_build(project)
    assert (project / "build" / "index.html").is_file()
    return project / "build"


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    """The site served over HTTP on 127.0.0.1 (the app fetches its data, which file:// blocks)."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Headless Chromium, installed from Debian's packages when missing."""
    if not CHROMIUM.exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
            subprocess.run(
                ["apt-get", "install", "-y", "chromium", "chromium-driver"],
                env=env,
                check=True,
                capture_output=True,
                timeout=1200,
            )
        except (OSError, subprocess.SubprocessError) as error:
            pytest.skip(f"headless Chromium is missing and apt-get could not install it: {error}")
    return CHROMIUM


def browse(chromium: Path, url: str, profile: Path, *action: str) -> str:
    """Run one headless Chromium action on ``url``; its standard output."""
    result = subprocess.run(
        [str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, url],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


def node_labels(dom: str) -> set[str]:
    """The labels of the nodes drawn in the flowchart (tasks, datasets, collapsed namespaces)."""
    return set(re.findall(r'class="pipeline-node__text"[^>]*>([^<]+)<', dom))


def test_static_site_data_has_every_stage_namespaces_and_layers(project: Path, site: Path):
    main = json.loads((site / "api" / "main").read_text())
    tasks = [node for node in main["nodes"] if node["type"] == "task"]
    assert {tag["id"] for tag in main["tags"]} >= set(STAGES)
    assert all(len(set(task["tags"]) & set(STAGES)) == 1 for task in tasks)
    pipeline = default_pipeline(project)
    namespaces = {node.namespace.split(".")[0] for node in pipeline.nodes if node.namespace}
    assert namespaces >= {"original", "retrain", "forget_importance", "evaluate_original"}
    assert namespaces <= set(main["modular_pipelines"])


def test_static_site_of_a_finished_run_shows_layers_and_figures(
    tmp_path_factory: pytest.TempPathFactory,
):
    tracked = tracked_project(tmp_path_factory)
    build = viz_build(tracked.path, "--include-previews", KEDRO_ENV=ENV)
    assert "Failed to build" not in build.stdout + build.stderr
    main = json.loads((tracked.path / "build" / "api" / "main").read_text())
    assert main["layers"] == LAYERS
    ids = {node["name"]: node["id"] for node in main["nodes"]}
    for name in PLOTS:
        node = json.loads((tracked.path / "build" / "api" / "nodes" / ids[name]).read_text())
        assert node["preview_type"] == "ImagePreview", name


def test_browser_shows_every_stage_of_the_pipeline(
    project: Path, site_url: str, chromium: Path, tmp_path: Path
):
    dom = browse(chromium, site_url, tmp_path / "profile", "--dump-dom")
    drawn = node_labels(dom)
    pipeline = default_pipeline(project)
    for stage in STAGES:
        # a namespaced node is drawn as its collapsed namespace (a modular pipeline)
        expected = {
            node.namespace.split(".")[0] if node.namespace else node.name
            for node in pipeline.nodes
            if stage in node.tags
        }
        assert expected <= drawn, f"{stage}: {sorted(expected - drawn)} not drawn"
    assert set(PLOTS) <= drawn

    screenshot = tmp_path / "kedro_viz.png"
    browse(chromium, site_url, tmp_path / "profile", f"--screenshot={screenshot}")
    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[:2] == (1000, 1600)
    assert pixels.std() > 0.05  # the app's chrome and the graph, not a blank page
