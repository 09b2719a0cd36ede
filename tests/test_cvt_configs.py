"""The three CvT-13 configs: their FPNs turn CvT's three levels (strides 4/8/16) into the levels the
heads expect, and each trains a few iterations on generated data through tools/train.py's code path
and evaluates (COCO AP / mIoU)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from pvt_det.tools.train import train as run_train
from pvt_det.datasets.synthetic import SHAPE_CLASSES, make_ade20k_dataset, make_coco_dataset
from helpers import load_tool, seg_64px_config

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = REPO_ROOT / 'configs'
ITERS = 3


def _build(config: str):
    cfg = Config.fromfile(str(CONFIGS / config))
    cfg.model.backbone.init_cfg = None  # no ImageNet weights offline
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return cfg, MODELS.build(cfg.model).eval()


@pytest.mark.parametrize('config, strides', [
    ('retinanet_cvt_13_fpn.py', [8, 16, 32, 64, 128]),
    ('mask_rcnn_cvt_13_fpn.py', [4, 8, 16, 32, 64]),
    ('sem_fpn_cvt_13_ade20k.py', [4, 8, 16, 32]),
])
def test_fpn_levels_match_what_the_heads_expect(config, strides):
    cfg, model = _build(config)
    assert model.backbone.__class__.__name__ == 'CvT' and model.backbone.arch_name == '13'
    with torch.no_grad():
        levels = model.extract_feat(torch.randn(1, 3, 128, 128))
    assert [128 // level.shape[-1] for level in levels] == strides
    if cfg.default_scope == 'mmdet':
        head = cfg.model.get('rpn_head') or cfg.model.bbox_head
        assert head.anchor_generator.strides == strides
    if 'roi_head' in cfg.model:
        assert cfg.model.roi_head.bbox_roi_extractor.featmap_strides == strides[:4]
        assert cfg.model.roi_head.mask_roi_extractor.featmap_strides == strides[:4]
    if 'decode_head' in cfg.model:
        assert cfg.model.decode_head.feature_strides == strides


DET_CONFIG = '''\
_base_ = {base!r}
data_root = {data_root!r}
metainfo = dict(classes={classes!r})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=0)))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + '/annotations/instances_val2017.json')
test_evaluator = val_evaluator
model = dict(backbone=dict(init_cfg=None), {heads})
param_scheduler = []  # no 500-iteration warm-up in a 3-iteration run
train_cfg = dict(max_epochs={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(interval={iters}), logger=dict(interval=1))
randomness = dict(seed=0)
'''

SEG_CONFIG = seg_64px_config()


def _train_tool():
    return load_tool('train')


def _train(tmp_path: Path, config_text: str) -> tuple[list[float], dict]:
    """Run tools/train.py's code in this process (no second interpreter start-up): the losses
    logged at every iteration and the metrics of the final evaluation."""
    config = tmp_path / 'user_config.py'
    # mmengine keeps one visualizer per name per process: a fresh name, or the scalars of this run
    # land in the work dir of an earlier run in this process.
    config.write_text(config_text + f'visualizer = dict(name={"vis_" + tmp_path.name!r})\n')
    work_dir = tmp_path / 'work'
    args = _train_tool().parse_args([str(config), '--work-dir', str(work_dir)])
    metrics = run_train(args)
    scalars = next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()
    losses = [json.loads(line)['loss'] for line in scalars if '"loss"' in line]
    assert len(losses) == ITERS and all(np.isfinite(losses)), losses
    assert any(work_dir.glob('*.pth')), 'no checkpoint written'
    return losses, metrics


@pytest.mark.slow
@pytest.mark.parametrize('config, masks', [('retinanet_cvt_13_fpn.py', False),
                                           ('mask_rcnn_cvt_13_fpn.py', True)])
def test_detection_config_trains_and_evaluates(tmp_path, config, masks):
    make_coco_dataset(tmp_path / 'coco', num_train=2, num_val=2, image_size=(64, 64), seed=3)
    num_classes = len(SHAPE_CLASSES)
    # score_thr=0: a detector 3 iterations old scores below the usual 0.05, and COCO evaluation
    # of an empty result list reports nothing. Fewer proposals and RoIs: 64-px images, CPU time.
    heads = (f'roi_head=dict(bbox_head=dict(num_classes={num_classes}), '
             f'mask_head=dict(num_classes={num_classes})), '
             'train_cfg=dict(rpn_proposal=dict(max_per_img=100), rcnn=dict(sampler=dict(num=64))), '
             'test_cfg=dict(rpn=dict(max_per_img=100), rcnn=dict(score_thr=0.0, max_per_img=20))'
             if masks else
             f'bbox_head=dict(num_classes={num_classes}), test_cfg=dict(score_thr=0.0)')
    losses, metrics = _train(tmp_path, DET_CONFIG.format(
        base=str(CONFIGS / config), data_root=str(tmp_path / 'coco'), classes=SHAPE_CLASSES,
        masks=masks, heads=heads, iters=ITERS))
    assert losses[-1] < losses[0], losses
    for metric in ('coco/bbox_mAP', 'coco/segm_mAP') if masks else ('coco/bbox_mAP',):
        assert 0.0 <= metrics[metric] <= 1.0, metrics


@pytest.mark.slow
def test_segmentation_config_trains_and_evaluates(tmp_path):
    make_ade20k_dataset(tmp_path / 'ade', num_train=2, num_val=2, image_size=(64, 64), seed=3)
    losses, metrics = _train(tmp_path, SEG_CONFIG.format(
        base=str(CONFIGS / 'sem_fpn_cvt_13_ade20k.py'), data_root=str(tmp_path / 'ade'),
        iters=ITERS))
    assert losses[-1] < losses[0], losses
    assert 0.0 <= metrics['mIoU'] <= 100.0, metrics
