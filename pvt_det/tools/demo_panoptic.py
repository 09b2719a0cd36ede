"""``tools/demo.py panoptic``: Mask2Former-PVTv2-b0 on a generated COCO panoptic-layout dataset -> PQ.

The demo config inherits the shipped COCO panoptic config (mmdet's Mask2Former recipe) and says what a
CPU run in minutes needs instead: the b0 backbone from scratch, a narrow, shallow head (64 channels,
20 queries, 1 pixel-decoder layer, 3 decoder layers), small images without large-scale jitter, fewer
sampled mask points, a short schedule with a higher lr.
"""
from __future__ import annotations

from pathlib import Path

from pvt_det.cli import ToolError
from pvt_det.datasets.synthetic import SHAPE_CLASSES
from pvt_det.datasets.synthetic_panoptic import STUFF_CLASSES, make_coco_panoptic_dataset
from pvt_det.tools.demo_training import prepare_demo, train_demo

PANOPTIC_CONFIG = '''# Written by tools/demo.py: Mask2Former-PVTv2-b0 on a generated COCO panoptic-layout dataset.
_base_ = {base!r}
data_root = {data_root!r}
metainfo = dict(classes={classes!r}, thing_classes={things!r}, stuff_classes={stuff!r})
num_things_classes = {num_things}
num_stuff_classes = {num_stuff}
num_classes = num_things_classes + num_stuff_classes
image_size = ({size}, {size})
batch_augments = [dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
                       mask_pad_value=0, pad_seg=True, seg_pad_value=255)]
data_preprocessor = dict(batch_augments=batch_augments)
embed_dims = {dims}
attn = dict(embed_dims=embed_dims, num_heads=4)
ffn = dict(embed_dims=embed_dims, feedforward_channels=4 * embed_dims)
model = dict(
    data_preprocessor=data_preprocessor,
    # From scratch (no ImageNet weights offline); b0's stage widths.
    backbone=dict(arch='b0', init_cfg=None),
    panoptic_head=dict(
        in_channels=[32, 64, 160, 256], feat_channels=embed_dims, out_channels=embed_dims,
        num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes,
        num_queries={queries},
        pixel_decoder=dict(encoder=dict(num_layers=1, layer_cfg=dict(self_attn_cfg=attn, ffn_cfg=ffn)),
                           positional_encoding=dict(num_feats=embed_dims // 2)),
        positional_encoding=dict(num_feats=embed_dims // 2),
        transformer_decoder=dict(num_layers=3, layer_cfg=dict(self_attn_cfg=attn, cross_attn_cfg=attn,
                                                              ffn_cfg=ffn)),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes),
    # The recipe samples 12544 points of 1024-pixel masks; these masks have {points} pixels at 1/4 scale.
    train_cfg=dict(num_points={points}),
    test_cfg=dict(max_per_image={queries}))
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadPanopticAnnotations'),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
# The recipe's two metrics: PQ / SQ / RQ on the panoptic PNGs, box / mask AP on the thing instances.
val_evaluator = [
    dict(type='CocoPanopticMetric', ann_file=data_root + 'annotations/panoptic_val2017.json',
         seg_prefix=data_root + 'annotations/panoptic_val2017/', nproc=1),
    dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json',
         metric=['bbox', 'segm'])
]
test_evaluator = val_evaluator

train_cfg = dict(max_iters={iters}, val_interval={iters}, dynamic_intervals=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end={warmup}),
    dict(type='CosineAnnealingLR', by_epoch=False, begin={warmup}, end={iters}, eta_min_ratio=0.05)
]
# From scratch the backbone trains at the full lr (the recipe's 0.1x is for a pretrained one).
optim_wrapper = dict(optimizer=dict(lr={lr}),
                     paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=1.0, decay_mult=1.0))))
default_hooks = dict(logger=dict(interval={log_every}),
                     checkpoint=dict(by_epoch=False, interval={iters}, max_keep_ckpts=1))
randomness = dict(seed=0)
'''


def write_panoptic_demo(work_dir: Path, base: Path, iters: int, num_train: int = 48, num_val: int = 8,
                        size: int = 64, queries: int = 20, lr: float = 2e-3) -> Path:
    """Write the generated dataset under ``work_dir/data`` and the demo config; return the config path."""
    data_root = work_dir / 'data'
    make_coco_panoptic_dataset(data_root, num_train=num_train, num_val=num_val, image_size=(size, size),
                               max_objects=2, seed=0)
    config = work_dir / 'configs' / 'mask2former_pvt_v2_b0_shapes_panoptic.py'
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(PANOPTIC_CONFIG.format(
        base=str(base), data_root=f'{data_root}/', classes=SHAPE_CLASSES + STUFF_CLASSES,
        things=SHAPE_CLASSES, stuff=STUFF_CLASSES, num_things=len(SHAPE_CLASSES),
        num_stuff=len(STUFF_CLASSES), size=size, dims=64, queries=queries, points=(size // 4) ** 2,
        batch=4, iters=iters, warmup=max(iters // 10, 2), lr=lr, log_every=max(iters // 10, 1)))
    return config


DEMO_ITERS = 60


def print_panoptic_metrics(metrics: dict) -> None:
    """PQ / SQ / RQ for all classes, things and stuff, as CocoPanopticMetric reports them (percent)."""
    for group, suffix in (('all', ''), ('things', '_th'), ('stuff', '_st')):
        values = [metrics.get(f'coco_panoptic/{name}{suffix}', float('nan')) for name in ('PQ', 'SQ', 'RQ')]
        print(f'  {group:7s} PQ {values[0]:5.1f}  SQ {values[1]:5.1f}  RQ {values[2]:5.1f}')
    print(f'  things box / mask AP: {metrics.get("coco/bbox_mAP", float("nan")):.3f} / '
          f'{metrics.get("coco/segm_mAP", float("nan")):.3f}')


def run_panoptic_demo(work_dir: str | None, config: str | None, iters: int | None) -> dict:
    """``tools/demo.py panoptic``: write, train, evaluate, print; ToolError unless PQ rose above zero."""
    iters = iters or DEMO_ITERS
    work, demo_config = prepare_demo(work_dir, 'work_dirs/demo_panoptic', config,
                                     'mask2former_pvt_v2_b2_coco_panoptic.py', iters, write_panoptic_demo)
    metrics, minutes = train_demo(demo_config, work)
    print('=' * 72)
    print(f'Mask2Former-PVTv2-b0 on the generated COCO panoptic-layout val set after {iters} iterations '
          f'({minutes:.1f} min, train + eval):')
    print_panoptic_metrics(metrics)
    print(f'checkpoint: {work / f"iter_{iters}.pth"}')
    print('=' * 72)
    score = metrics.get('coco_panoptic/PQ')
    if not score or score <= 0:
        raise ToolError(f'PQ did not rise above zero ({score}); see the training log in {work}')
    return metrics
