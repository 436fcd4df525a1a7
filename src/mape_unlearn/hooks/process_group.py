"""One job: under a distributed launcher, join its process group before any node runs."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl

from mape_unlearn.core.runtime.distributed import init_from_env


class JoinProcessGroup:
    """Under ``torchrun`` / ``accelerate launch``, join the launcher's process group first.

    Importance, unlearning and evaluation then split their samples between the ranks
    (``core.runtime.distributed``); every rank runs every node, so each collective has all ranks. A
    plain ``kedro run`` has no launcher variables and joins nothing.
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self) -> None:
        init_from_env()
