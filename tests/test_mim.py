"""OpenMMLab's ``mim`` runs pvt_det's tools (issue 24): ``mim test pvt_det CONFIG --checkpoint CKPT`` executes
``<package>/tools/test.py`` as a plain file, which needs absolute imports in every ``pvt_det/tools/*.py``.

The real thing, in a throwaway venv: the wheel of this checkout (tests/test_packaging.py's ``wheel_venv``,
over the project's .venv packages) and openmim 0.3.9 from the package index. mim imports ``pkg_resources``,
which setuptools 70 removed: the venv gets ``setuptools<70``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pvt_det.datasets.synthetic import make_coco_dataset
from test_packaging import wheel_venv
from test_tools import write_user_config

REPO = Path(__file__).resolve().parents[1]


def _pip_install(venv_python: Path, *requirements: str) -> None:
    found = subprocess.run([sys.executable, '-m', 'pip', '--python', str(venv_python), 'install', '-q',
                            '--disable-pip-version-check', *requirements], capture_output=True, text=True,
                           timeout=900)
    if found.returncode != 0:
        if re.search(r'No matching distribution|Could not find a version|Connection|NewConnectionError|'
                     r'Temporary failure in name resolution|Network is unreachable', found.stderr):
            pytest.skip(f'the package index is unreachable, openmim cannot be installed: '
                        f'{found.stderr.strip().splitlines()[-1]}')
        raise AssertionError(found.stderr[-3000:])


@pytest.fixture(scope='module')
def mim_venv(tmp_path_factory) -> Path:
    """The wheel of this checkout installed (not editable: mim 0.3.9 finds a package by its folder in
    site-packages) in a throwaway venv, with openmim 0.3.9; returns its bin/ folder."""
    environment = wheel_venv(tmp_path_factory.mktemp('mim'))
    _pip_install(environment.bin / 'python', 'openmim==0.3.9', 'setuptools<70')
    return environment.bin


@pytest.fixture(scope='module')
def checkpoint_and_config(tmp_path_factory) -> tuple[Path, Path]:
    """A 64 px RetinaNet-PVTv2-b0 config on a generated 1-image COCO set and a checkpoint of its (untrained)
    model, written as tools/train.py writes one (``state_dict`` + ``meta``)."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    root = tmp_path_factory.mktemp('mim_data')
    make_coco_dataset(root / 'coco', num_train=1, num_val=1, image_size=(64, 64), seed=2)
    config = write_user_config(root / 'my_retinanet.py', 'retinanet_pvt_v2_b0_fpn.py', root / 'coco', iters=1)
    register_all_modules()
    model = MODELS.build(Config.fromfile(str(config)).model)
    checkpoint = root / 'untrained.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return config, checkpoint


@pytest.mark.slow
def test_mim_test_runs_the_test_tool(mim_venv, checkpoint_and_config, tmp_path):
    config, checkpoint = checkpoint_and_config
    env = {key: value for key, value in os.environ.items() if key not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(PATH=f'{mim_venv}:{env.get("PATH", "")}', OMP_NUM_THREADS='1')
    found = subprocess.run([str(mim_venv / 'mim'), 'test', 'pvt_det', str(config), '--checkpoint',
                            str(checkpoint), '--work-dir', str(tmp_path / 'work')],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    output = found.stdout + found.stderr
    assert found.returncode == 0, output[-3000:]
    assert 'relative import' not in output
    assert re.search(r'^bbox_mAP: \d\.\d{4}$', found.stdout, re.M), output[-3000:]
    assert 'Testing finished successfully' in output  # mim's own closing line
