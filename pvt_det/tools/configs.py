"""Reading a config for the tools: ``--cfg-options``, its registry scope (mmdet or mmseg, from
``default_scope``), the work dir, and the edits that make a GPU-cluster config run on this machine."""
from __future__ import annotations

import difflib
import os.path as osp
from pathlib import Path
from typing import Any

import pvt_det
import torch
from mmengine.config import Config, ConfigDict

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


def set_work_dir(cfg: Config, config_path: str | Path, work_dir: str | None) -> None:
    """CLI ``--work-dir`` > ``work_dir`` in the config > ``work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', Path(config_path).stem)


def adapt_to_machine(cfg: Config) -> None:
    """Make a GPU-cluster config run on this machine when it has no CUDA.

    NCCL and SyncBN need CUDA: distributed runs fall back to the gloo backend and SyncBN to BN
    (mmengine already reverts SyncBN for single-process runs), and mixed precision uses bfloat16
    autocast on the CPU.
    """
    if torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.model = _replace_sync_bn(cfg.model)
    if cfg.get('launcher', 'none') != 'none' and cfg.get('model_wrapper_cfg') is None:
        # mmengine's default DDP wrapper pins device_ids=[LOCAL_RANK], a CUDA device.
        cfg.model_wrapper_cfg = ConfigDict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = cfg.get('optim_wrapper')
    if wrapper is not None and wrapper.get('type') == 'AmpOptimWrapper':
        use_cpu_amp(wrapper)


def _replace_sync_bn(node: Any) -> Any:
    if isinstance(node, dict):
        out = type(node)({k: _replace_sync_bn(v) for k, v in node.items()})
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_sync_bn(v) for v in node)
    return node


def use_cpu_amp(wrapper: ConfigDict) -> None:
    """Switch an optimizer-wrapper config to bfloat16 autocast on the CPU (``CPUAmpOptimWrapper``)."""
    wrapper.type = 'CPUAmpOptimWrapper'
    wrapper.pop('loss_scale', None)
    wrapper.dtype = 'bfloat16'


def enable_amp(cfg: Config) -> None:
    """``--amp``: float16 with dynamic loss scaling on CUDA, bfloat16 autocast on the CPU."""
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        use_cpu_amp(cfg.optim_wrapper)


def enable_auto_scale_lr(cfg: Config) -> None:
    """``--auto-scale-lr``: scale lr by (world size x batch size) / ``auto_scale_lr.base_batch_size``."""
    scaling = cfg.get('auto_scale_lr')
    if not scaling or 'base_batch_size' not in scaling:
        raise ToolError('--auto-scale-lr needs auto_scale_lr = dict(enable=False, '
                        'base_batch_size=N) in the config (N = the batch the lr was tuned for)')
    scaling.enable = True
