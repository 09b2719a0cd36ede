import os

import pytest
import torch

# Two cores are shared by the whole suite; more threads only add contention. Under pytest-xdist (`make test`
# runs `pytest -n 2`) the workers share the cores: each gets its part.
WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // WORKERS))

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(autouse=True)
def _restore_mmengine_globals():
    """mmengine keeps process-global "current" instances (the latest made): the registry scope, the logger,
    the message hub. A runner built in one test (``default_scope='mmengine'``, a logger writing to that test's
    captured stderr) would otherwise make the next test's ``mmdet.registry.MODELS.build`` look in mmengine's
    root registry and its log lines go to a closed stream. Each test leaves them as it found them."""
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.registry import DefaultScope
    managers = (DefaultScope, MMLogger, MessageHub)
    before = [dict(manager._instance_dict) for manager in managers]
    yield
    for manager, instances in zip(managers, before):
        manager._instance_dict.clear()
        manager._instance_dict.update(instances)
