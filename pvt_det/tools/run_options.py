"""The edits a tool makes to a loaded config for one run: the work dir, ``--amp``, ``--auto-scale-lr``, and
what makes a GPU-cluster config run on this machine."""
from __future__ import annotations

import os.path as osp
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config, ConfigDict

from pvt_det.cli import ToolError


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
