"""Reading a config: ``--cfg-options``, its registry scope (mmdet or mmseg, from ``default_scope``),
pvt_det's own shipped configs, and a clear line for an unknown backbone type. Library code: the tools, the
pictures and the backbone swap read configs through it."""
from __future__ import annotations

import difflib
from pathlib import Path

import pvt_det
from mmengine.config import Config

from ..cli import ToolError

TASKS = {'mmdet': 'det', 'mmseg': 'seg'}
# A checkout keeps the configs in <repo>/configs; an installed package carries them as package data.
CONFIG_DIRS = (Path(pvt_det.__file__).resolve().parents[1] / 'configs',
               Path(pvt_det.__file__).resolve().parent / '.mim' / 'configs' / 'configs')


def shipped_config(name: str) -> Path:
    """The path of one of pvt_det's own configs, e.g. ``shipped_config('retinanet_pvt_v2_b0_fpn.py')``."""
    for folder in CONFIG_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise ToolError(f'shipped config {name} not found in {" or ".join(map(str, CONFIG_DIRS))}')


def load_config(path: str | Path, cfg_options: dict | None = None) -> Config:
    """Read a config file, apply ``--cfg-options`` and check its scope is mmdet or mmseg."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f'config file not found: {path}. Pass a config path such as '
                        'configs/retinanet_pvt_small_fpn.py or configs/sem_fpn_pvt_v2_b0_ade20k.py')
    cfg = Config.fromfile(str(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    task_of(cfg)  # fail early on a config neither mmdet nor mmseg can run
    return cfg


def task_of(cfg: Config) -> str:
    """``'det'`` for an mmdet config, ``'seg'`` for an mmseg one (from ``default_scope``)."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ToolError(f"config has default_scope={scope!r}; pvt_det's tools run configs with "
                        "default_scope='mmdet' (detection) or 'mmseg' (segmentation): inherit "
                        "one of the configs in configs/")
    return TASKS[scope]


def register_scope(cfg: Config) -> str:
    """Register the config's OpenMMLab package and make its scope the default one."""
    task = task_of(cfg)
    if task == 'det':
        from mmdet.utils import register_all_modules
    else:
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    check_backbone_type(cfg)
    return task


def check_backbone_type(cfg: Config) -> None:
    """Fail with the closest registered names when ``model.backbone.type`` is unknown."""
    from mmengine.registry import DefaultScope
    backbone = (cfg.get('model') or {}).get('backbone')
    name = backbone.get('type') if isinstance(backbone, dict) else None
    if not isinstance(name, str):
        return
    if task_of(cfg) == 'det':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        if MODELS.get(name) is not None:
            return
    close = difflib.get_close_matches(name, list(MODELS.module_dict), n=3, cutoff=0.6)
    raise ToolError(f'unknown backbone type {name!r} (model.backbone.type): '
                    + (f'did you mean {" or ".join(map(repr, close))}? ' if close else '')
                    + "pvt_det's backbones are 'PVT', 'PVTv2' and 'CvT'; other models must be "
                    "registered by a module listed in the config's custom_imports")
