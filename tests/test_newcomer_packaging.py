"""A regular build carries the configs and nothing compiled (issue 24: "a non-editable install copies
configs/__pycache__"): setup.py copies configs/ without __pycache__ or .pyc, even when the source tree has them
(Python writes them there when something imports a config as a module). What an install adds afterwards is
pip's: it byte-compiles every .py it installs, package data included (mmdet's .mim/configs get the same);
`pip install --no-compile` leaves them out."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from test_packaging import SOURCES

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_has_no_bytecode_even_from_a_tree_that_has_some(tmp_path):
    source = tmp_path / 'source'
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns('.mim'))
        else:
            shutil.copy2(REPO / name, source / name)
    planted = [source / 'configs' / '__pycache__' / 'retinanet_pvt_v2_b0_fpn.cpython-311.pyc',
               source / 'configs' / '_base_' / 'models' / '__pycache__' / 'retinanet_fpn.cpython-311.pyc',
               source / 'configs' / 'examples' / 'stray.pyc']
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'\x00')
    built = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
                            '--disable-pip-version-check', '-w', str(tmp_path / 'dist'), str(source)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel, = (tmp_path / 'dist').glob('pvt_det-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    configs = [name for name in names if name.startswith('pvt_det/.mim/configs/configs/')]
    assert 'pvt_det/.mim/configs/configs/retinanet_pvt_v2_b0_fpn.py' in configs
    assert 'pvt_det/.mim/configs/configs/examples/retinanet_pvt_v2_b0_my_coco.py' in configs
    assert [name for name in configs if '__pycache__' in name or name.endswith('.pyc')] == []
    assert [name for name in names if name.startswith('pvt_det/.mim/tools/') and not name.endswith('.py')] == []
