"""Every detection config builds, matches the papers' parameter counts and the official recipe."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

import pvt_det  # noqa: F401  (registers PVT / PVTv2)

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
URL = 'https://github.com/whai362/PVT/releases/download/v2/{}.pth'
BACKBONES = ('pvt_tiny', 'pvt_small', 'pvt_medium', 'pvt_large', 'pvt_v2_b0', 'pvt_v2_b1',
             'pvt_v2_b2', 'pvt_v2_b2_li', 'pvt_v2_b3', 'pvt_v2_b4', 'pvt_v2_b5')

# Millions of parameters with 80 COCO classes: PVT (ICCV 2021) Tables 3-4, PVTv2 (CVMJ 2022) Table 3.
PAPER_PARAMS = {
    'retinanet_pvt_tiny_fpn': 23.0, 'retinanet_pvt_small_fpn': 34.2,
    'retinanet_pvt_medium_fpn': 53.9, 'retinanet_pvt_large_fpn': 71.1,
    'mask_rcnn_pvt_tiny_fpn': 32.9, 'mask_rcnn_pvt_small_fpn': 44.1,
    'mask_rcnn_pvt_medium_fpn': 63.9, 'mask_rcnn_pvt_large_fpn': 81.0,
    'retinanet_pvt_v2_b0_fpn': 13.0, 'retinanet_pvt_v2_b1_fpn': 23.8,
    'retinanet_pvt_v2_b2_fpn': 35.1, 'retinanet_pvt_v2_b3_fpn': 55.0,
    'retinanet_pvt_v2_b4_fpn': 72.3, 'retinanet_pvt_v2_b5_fpn': 91.7,
    'retinanet_pvt_v2_b2_li_fpn': 32.3,
    'mask_rcnn_pvt_v2_b0_fpn': 23.5, 'mask_rcnn_pvt_v2_b1_fpn': 33.7,
    'mask_rcnn_pvt_v2_b2_fpn': 45.0, 'mask_rcnn_pvt_v2_b3_fpn': 64.9,
    'mask_rcnn_pvt_v2_b4_fpn': 82.2, 'mask_rcnn_pvt_v2_b5_fpn': 101.6,
    'mask_rcnn_pvt_v2_b2_li_fpn': 42.2,
    # The 3x / 640 px configs differ only in schedule and augmentation.
    'mask_rcnn_pvt_v2_b0_fpn_3x': 23.5, 'mask_rcnn_pvt_v2_b2_fpn_3x': 45.0,
    'mask_rcnn_pvt_v2_b2_li_fpn_3x': 42.2, 'retinanet_pvt_small_fpn_640': 34.2,
}
DET_LEAVES = sorted(p.stem for p in CONFIGS.glob('*.py')
                    if p.stem.startswith(('retinanet_', 'mask_rcnn_')))


def _load(name: str) -> Config:
    return Config.fromfile(str(CONFIGS / f'{name}.py'))


def test_every_issue_config_exists():
    expected = {f'{det}_{bb}_fpn' for det in ('retinanet', 'mask_rcnn') for bb in BACKBONES}
    expected |= {'retinanet_r50_fpn', 'mask_rcnn_r50_fpn',
                 'mask_rcnn_pvt_v2_b0_fpn_3x', 'mask_rcnn_pvt_v2_b2_fpn_3x'}
    assert expected <= set(DET_LEAVES), sorted(expected - set(DET_LEAVES))
    assert set(PAPER_PARAMS) <= set(DET_LEAVES)


@pytest.mark.parametrize('name', DET_LEAVES)
def test_config_builds_with_paper_parameter_count(name):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = _load(name)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['pvt_det'], allow_failed_imports=False)
    with torch.no_grad():
        model = MODELS.build(cfg.model)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    if name in PAPER_PARAMS:
        # The papers round to 0.1M; a deviation beyond that is a real architecture difference.
        assert abs(millions - PAPER_PARAMS[name]) <= 0.1, f'{name}: {millions:.3f}M vs paper {PAPER_PARAMS[name]}M'


@pytest.mark.parametrize('bb', BACKBONES)
def test_official_recipe(bb):
    for det, lr in (('retinanet', 1e-4), ('mask_rcnn', 2e-4)):
        # The official configs that halve the batch to 1 image per GPU (memory) and divide lr by 1.4;
        # RetinaNet PVT-Large keeps 2 images at lr 1e-4.
        big = bb in ('pvt_v2_b4', 'pvt_v2_b5') or (det, bb) == ('mask_rcnn', 'pvt_large')
        cfg = _load(f'{det}_{bb}_fpn')
        backbone = cfg.model.backbone
        assert backbone.type == ('PVTv2' if 'v2' in bb else 'PVT')
        assert backbone.arch == bb.split('_')[-1] if bb != 'pvt_v2_b2_li' else backbone.arch == 'b2_li'
        assert backbone.init_cfg == dict(type='Pretrained', checkpoint=URL.format(bb))
        assert backbone.drop_path_rate == (0.0 if bb in ('pvt_medium', 'pvt_large') else 0.1)
        neck = cfg.model.neck
        assert neck.in_channels == ([32, 64, 160, 256] if bb == 'pvt_v2_b0' else [64, 128, 320, 512])
        assert neck.out_channels == 256 and neck.num_outs == 5
        if det == 'retinanet':
            assert neck.start_level == 1 and neck.add_extra_convs == 'on_input'
        optimizer = cfg.optim_wrapper.optimizer
        assert optimizer.type == 'AdamW' and optimizer.weight_decay == 1e-4
        assert optimizer.lr == pytest.approx(lr / 1.4 if big else lr)
        assert cfg.train_dataloader.batch_size == (1 if big else 2)
        assert cfg.auto_scale_lr.base_batch_size == (8 if big else 16)
        assert cfg.train_cfg.max_epochs == 12
        steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0]
        warmup = [s for s in cfg.param_scheduler if s.type == 'LinearLR'][0]
        assert steps.milestones == [8, 11] and warmup.end == 500 and not warmup.by_epoch
        assert cfg.model.get('bbox_head', cfg.model.get('roi_head', {}).get('bbox_head')).num_classes == 80
        assert cfg.val_evaluator.type == 'CocoMetric'
        assert cfg.val_evaluator.metric == ('bbox' if det == 'retinanet' else ['bbox', 'segm'])


def test_3x_configs_are_multiscale_36_epochs():
    for bb in ('pvt_v2_b0', 'pvt_v2_b2'):
        cfg = _load(f'mask_rcnn_{bb}_fpn_3x')
        assert cfg.train_cfg.max_epochs == 36
        steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0]
        assert steps.milestones == [27, 33]
        resizes = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomChoice']
        assert resizes, 'the 3x recipe trains multi-scale'
        assert cfg.model.backbone.init_cfg.checkpoint == URL.format(bb)


@pytest.mark.parametrize('det', ['retinanet', 'mask_rcnn'])
def test_resnet_twin_differs_only_in_backbone_and_neck_widths(det):
    pvt = _load(f'{det}_pvt_small_fpn').to_dict()
    r50 = _load(f'{det}_r50_fpn').to_dict()
    assert r50['model']['backbone']['type'] == 'ResNet' and r50['model']['backbone']['depth'] == 50
    assert r50['model']['neck']['in_channels'] == [256, 512, 1024, 2048]
    for cfg in (pvt, r50):
        del cfg['model']['backbone'], cfg['model']['neck']['in_channels']
    assert pvt == r50


def test_leaf_configs_are_short():
    """A leaf says only what differs from its base: a handful of lines, never a full model."""
    for name in DET_LEAVES:
        if 'cvt' in name:
            continue
        code = [line for line in (CONFIGS / f'{name}.py').read_text().splitlines()
                if line.strip() and not line.lstrip().startswith('#')]
        assert len(code) <= 20, f'{name}.py has {len(code)} lines of code'
