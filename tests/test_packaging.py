"""pvt_det as a library other projects build on: an installed pvt_det carries its configs, a config anywhere
inherits them as ``_base_ = 'pvt_det::configs/<file>.py'``, and the console scripts run them.

The slow test builds the sdist and, from it, the wheel of a copy of this checkout, installs the wheel
without dependencies into a throwaway virtual environment that sees this project's ``.venv`` packages,
and works from a directory outside the repository, as a user's own project would.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import NamedTuple

import pytest
from mmengine.config import Config

import pvt_det  # noqa: F401  (applies pvt_det.compat: the pvt_det:: prefix)
from pvt_det.datasets.synthetic import make_coco_dataset
from test_tools import CLASSES, RETINANET_HEAD, USER_CONFIG, logged_losses, printed_metrics

REPO = Path(__file__).resolve().parents[1]
# What an sdist is made of (MANIFEST.in adds configs/ and tools/ to the package and the metadata).
SOURCES = ('setup.py', 'setup.cfg', 'pyproject.toml', 'MANIFEST.in', 'README.md',
           'pvt_det', 'configs', 'tools')
DET_BASE = 'pvt_det::configs/retinanet_pvt_v2_b0_fpn.py'
SEG_BASE = 'pvt_det::configs/sem_fpn_pvt_v2_b0_ade20k.py'

# Run by the throwaway environment's interpreter: load each config, build its model with mmengine's root
# registry (the scope that mmengine gives the inherited objects has to find mmdet's / mmseg's classes).
BUILD_SCRIPT = """
import json, sys
import pvt_det
from mmengine.config import Config
from mmengine.registry import MODELS
report = dict(pvt_det=pvt_det.__file__)
for path in sys.argv[1:]:
    cfg = Config.fromfile(path)
    model = MODELS.build(cfg.model)
    report[path] = dict(default_scope=cfg.default_scope, model_scope=cfg.model.get('_scope_'),
                        type=type(model).__name__, params=sum(p.numel() for p in model.parameters()),
                        text=cfg.text)
print(json.dumps(report))
"""


# ----------------------------------------------------------------------------- fast: the pvt_det:: prefix
def test_mmengine_knows_the_package_prefix():
    from mmengine.config.utils import MODULE2PACKAGE, _get_package_and_cfg_path
    assert MODULE2PACKAGE['pvt_det'] == 'pvt_det'
    assert _get_package_and_cfg_path(DET_BASE) == ('pvt_det', 'configs/retinanet_pvt_v2_b0_fpn.py')
    # mmengine needs a folder after `::`; the documented form always has one (configs/).
    with pytest.raises(ValueError, match='relative config path'):
        _get_package_and_cfg_path('pvt_det::retinanet_pvt_v2_b0_fpn.py')


def test_a_pvt_det_base_builds_in_the_scope_its_default_scope_names():
    base = dict(default_scope='mmseg', model=dict(type='EncoderDecoder', backbone=dict(type='PVTv2')))
    model = Config._dict_to_config_dict(base, 'pvt_det')['model']
    assert model._scope_ == 'mmseg' and '_scope_' not in model.backbone  # as mmengine scopes mmseg:: bases
    # Other packages' bases keep mmengine's own rule: the scope is the package.
    assert Config._dict_to_config_dict(base, 'mmdet')['model']._scope_ == 'mmdet'
    # A base without default_scope (a model-only _base_ file) leaves the scope to the inheriting config.
    model_only = Config._dict_to_config_dict(dict(model=dict(type='RetinaNet')), 'pvt_det')
    assert '_scope_' not in model_only['model']


def test_the_wheel_ships_the_configs_tree_and_the_tool_shims():
    setup = _load_setup()
    sources = setup.mim_sources()
    assert sources[Path('configs', 'configs')] == REPO / 'configs'
    assert sources[Path('tools', 'train.py')] == REPO / 'tools' / 'train.py'
    assert Path('tools', 'test.py') in sources
    # Repository maintenance scripts have no pvt_det.tools module and are not installed.
    assert not any(dest.name in ('gen_model_zoo.py', 'setup_env.sh') for dest in sources)


def test_every_tool_has_a_console_script():
    """setup.cfg's console scripts are exactly the ``main`` functions of ``pvt_det.tools.<name>``."""
    import configparser
    import importlib
    parser = configparser.ConfigParser()
    parser.read(REPO / 'setup.cfg')
    declared = parser['options.entry_points']['console_scripts']
    scripts = dict(line.split(' = ') for line in declared.strip().splitlines())
    tools = sorted(path.stem for path in (REPO / 'pvt_det' / 'tools').glob('*.py')
                   if re.search(r'^def main\(', path.read_text(), re.M))
    assert sorted(scripts) == sorted('pvt-det-' + tool.replace('_', '-') for tool in tools)
    for name, target in scripts.items():
        module, function = target.split(':')
        assert name == 'pvt-det-' + module.rpartition('.')[2].replace('_', '-')
        assert callable(getattr(importlib.import_module(module), function)), target


# ----------------------------------------------------------------------------- slow: wheel, venv, user project
class Environment(NamedTuple):
    bin: Path  # python and the console scripts
    site: Path  # its site-packages


@pytest.fixture(scope='module')
def installed(tmp_path_factory) -> Environment:
    """A throwaway virtual environment with the wheel of this checkout installed."""
    return wheel_venv(tmp_path_factory.mktemp('packaging'))


def wheel_venv(root: Path) -> Environment:
    """Under ``root``: the sdist and wheel of a copy of this checkout, and a venv with that wheel installed
    over this project's ``.venv`` packages (tests/test_mim.py adds openmim to one)."""
    source = root / 'source'
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '.mim'))
        else:
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, '-c', 'import sys; from setuptools import build_meta; '
          'build_meta.build_sdist(sys.argv[1])', str(root / 'dist')], cwd=source)
    sdist, = (root / 'dist').glob('pvt_det-*.tar.gz')
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
          '--disable-pip-version-check', '-w', str(root / 'dist'), str(sdist)], cwd=root)
    wheel, = (root / 'dist').glob('pvt_det-*.whl')

    venv = root / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], cwd=root)
    python = venv / 'bin' / 'python'
    # The project's dependencies: a path line in a .pth file adds .venv's site-packages without running the
    # .pth files in it, so the editable pvt_det of .venv stays out. (--system-site-packages would expose the
    # interpreter .venv was made from, not .venv.)
    purelib = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, 'project_venv.pth').write_text(sysconfig.get_path('purelib') + '\n')
    _run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '--no-deps', '-q',
          '--disable-pip-version-check', str(wheel)], cwd=root)
    return Environment(bin=venv / 'bin', site=Path(purelib))


@pytest.mark.slow
def test_a_project_outside_the_repository_inherits_the_installed_configs(installed, tmp_path):
    project = tmp_path / 'my_project'
    project.mkdir()
    (project / 'det.py').write_text(_documented_project_config())
    (project / 'seg.py').write_text(f"_base_ = '{SEG_BASE}'\n")
    report = json.loads(_run([str(installed.bin / 'python'), '-c', BUILD_SCRIPT, 'det.py', 'seg.py'],
                             cwd=project).stdout.splitlines()[-1])

    package = installed.site / 'pvt_det'
    assert Path(report['pvt_det']) == package / '__init__.py'  # the wheel's, not the checkout's
    shipped = {'det.py': (DET_BASE, 'mmdet', 'RetinaNet'), 'seg.py': (SEG_BASE, 'mmseg', 'EncoderDecoder')}
    for path, (base, scope, detector) in shipped.items():
        built = report[path]
        # The base came from the wheel's package data, not from this checkout.
        assert str(package / '.mim' / 'configs' / base.partition('::')[2]) in built['text']
        assert str(REPO / 'configs') not in built['text']
        assert built['default_scope'] == built['model_scope'] == scope and built['type'] == detector
        assert built['params'] == _parameter_count(REPO / base.partition('::')[2]), path


@pytest.mark.slow
def test_the_console_scripts_train_and_test_a_project_config(installed, tmp_path):
    """A user config over the shipped one, trained and tested by the console scripts on generated data."""
    project = tmp_path / 'my_project'
    project.mkdir()
    data_root = tmp_path / 'coco'
    make_coco_dataset(data_root, num_train=2, num_val=2, image_size=(64, 64), seed=1)
    (project / 'train_det.py').write_text(USER_CONFIG.format(
        base=DET_BASE, data_root=data_root, classes=CLASSES, masks=False,
        head=RETINANET_HEAD.format(n=len(CLASSES)), iters=2,
        train_ann='annotations/instances_train2017.json', train_img='train2017/',
        val_ann='annotations/instances_val2017.json', val_img='val2017/')
        # pvt-det-test evaluates; the train loop would also validate after its last iteration.
        + 'val_dataloader = val_cfg = val_evaluator = None\n')
    _run([str(installed.bin / 'pvt-det-train'), 'train_det.py', '--work-dir', 'work'], cwd=project)
    losses = logged_losses(project / 'work')
    assert len(losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in losses), losses
    checkpoint = project / 'work' / 'iter_2.pth'
    assert checkpoint.is_file()
    test = _run([str(installed.bin / 'pvt-det-test'), 'train_det.py', str(checkpoint), '--work-dir', 'work'],
                cwd=project)
    assert 0.0 <= printed_metrics(test.stdout)['bbox_mAP'] <= 1.0, test.stdout[-2000:]

    # `mim train pvt_det CONFIG` (openmim 0.3.9) runs <package>/.mim/tools/train.py: first with -h, adding
    # `--device cpu` when the help names --gpus (pvt_det's tools take no such flag), then with
    # CONFIG --launcher none.
    mim_train = installed.site / 'pvt_det' / '.mim' / 'tools' / 'train.py'
    mim_help = _run([str(installed.bin / 'python'), str(mim_train), '-h'], cwd=project).stdout
    assert '--launcher' in mim_help and '--gpus' not in mim_help, mim_help


# ----------------------------------------------------------------------------- helpers
def _documented_project_config() -> str:
    """The config of docs/get_started.md's "Use pvt_det from your own project" (it inherits DET_BASE)."""
    doc = (REPO / 'docs' / 'get_started.md').read_text()
    section = doc.partition('Use pvt_det from your own project')[2]
    config = re.search(r'^```python\n(.*?)^```', section, re.M | re.S)[1]
    assert config.startswith(f"_base_ = '{DET_BASE}'"), config
    return config


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=dict(env, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, f'{command}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}'
    return proc


def _parameter_count(config: Path) -> int:
    """The model of a config of this checkout, built as its tools build it (in its default scope)."""
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(str(config))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    return sum(p.numel() for p in model.parameters())


def _load_setup():
    """setup.py as a module (it calls setup() only when run as __main__, as setuptools runs it)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('pvt_det_setup', REPO / 'setup.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
