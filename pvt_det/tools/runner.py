"""mmengine's runner for a config that pvt_det's tools prepared."""
from __future__ import annotations

from mmengine.config import Config
from mmengine.runner import Runner


def build_runner(cfg: Config) -> Runner:
    """``Runner.from_cfg``, or the registered runner the config names in ``runner_type``."""
    from mmengine.registry import RUNNERS
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
