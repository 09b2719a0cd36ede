"""Every Semantic FPN config builds, with the parameter count the PVT papers report for it."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import pvt_det  # noqa: F401  (registers PVT/PVTv2 in mmseg's MODELS)

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')

# Millions of parameters, Semantic FPN on ADE20K (150 classes): PVT v1 paper Table 5 (with its
# ResNet-50 row) and PVT v2 paper's ADE20K table.
PAPER_PARAMS_M = {
    'pvt_tiny': 17.0, 'pvt_small': 28.2, 'pvt_medium': 48.0, 'pvt_large': 65.1,
    'pvt_v2_b0': 7.6, 'pvt_v2_b1': 17.8, 'pvt_v2_b2': 29.1, 'pvt_v2_b2_li': 26.3,
    'pvt_v2_b3': 49.0, 'pvt_v2_b4': 66.3, 'pvt_v2_b5': 85.7, 'r50': 28.5,
}


def _build(backbone: str) -> torch.nn.Module:
    from mmseg.registry import MODELS
    cfg = Config.fromfile(os.path.join(CONFIG_DIR, f'sem_fpn_{backbone}_ade20k.py'))
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model)


def test_every_pvt_and_resnet_sem_fpn_config_is_covered():
    # CvT's Semantic FPN configs are checked by tests/test_cvt_configs.py.
    shipped = sorted(name[len('sem_fpn_'):-len('_ade20k.py')] for name in os.listdir(CONFIG_DIR)
                     if name.startswith(('sem_fpn_pvt_', 'sem_fpn_r')) and name.endswith('_ade20k.py'))
    assert shipped == sorted(PAPER_PARAMS_M)


@pytest.mark.parametrize('backbone', sorted(PAPER_PARAMS_M))
def test_param_count_matches_paper(backbone):
    model = _build(backbone)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    expected = PAPER_PARAMS_M[backbone]
    assert millions == pytest.approx(expected, abs=0.1), f'{backbone}: {millions:.3f}M'


def test_configs_keep_the_paper_recipe():
    cfg = Config.fromfile(os.path.join(CONFIG_DIR, 'sem_fpn_pvt_v2_b0_ade20k.py'))
    assert cfg.default_scope == 'mmseg' and cfg.custom_imports.imports == ['pvt_det']
    model = cfg.model
    assert (model.backbone.type, model.backbone.arch) == ('PVTv2', 'b0')
    assert model.backbone.init_cfg.checkpoint.endswith('/v2/pvt_v2_b0.pth')
    assert model.neck.in_channels == [32, 64, 160, 256] and model.neck.num_outs == 4
    head = model.decode_head
    assert (head.type, head.channels, head.num_classes) == ('FPNHead', 128, 150)
    assert head.feature_strides == [4, 8, 16, 32]
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=1e-4)
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.param_scheduler[0].power == 0.9
    assert cfg.train_cfg.max_iters == 80000 and cfg.train_cfg.val_interval == 8000
    assert cfg.default_hooks.checkpoint.interval == 8000
    assert cfg.train_dataloader.batch_size * 4 == cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert cfg.crop_size == (512, 512)
    # mmseg's dataset base: mmengine marks what a config takes from a package base with `_scope_`.
    evaluator = {k: v for k, v in cfg.val_evaluator.items() if k != '_scope_'}
    assert evaluator == dict(type='IoUMetric', iou_metrics=['mIoU'])


def test_r50_twin_differs_from_pvt_small_only_in_backbone_and_neck_widths():
    pvt = Config.fromfile(os.path.join(CONFIG_DIR, 'sem_fpn_pvt_small_ade20k.py')).to_dict()
    r50 = Config.fromfile(os.path.join(CONFIG_DIR, 'sem_fpn_r50_ade20k.py')).to_dict()
    assert r50['model']['backbone']['type'] == 'ResNetV1c'
    assert r50['model']['neck']['in_channels'] == [256, 512, 1024, 2048]
    for cfg in (pvt, r50):
        del cfg['model']['backbone'], cfg['model']['neck']['in_channels']
    assert pvt == r50
