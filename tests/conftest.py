import os

import pytest
import torch

from helpers import mmengine_instances_kept

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
    """A runner built in one test (``default_scope='mmengine'``, a logger writing to that test's captured
    stderr, a visualizer saving to its folder) would otherwise make the next test's
    ``mmdet.registry.MODELS.build`` look in mmengine's root registry, its log lines go to a closed stream and
    its visualizer write to the earlier test's folder. Each test leaves mmengine's current instances as it
    found them."""
    with mmengine_instances_kept():
        yield
