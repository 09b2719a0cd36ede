"""The README's main job on data that exists here: train and evaluate on a generated dataset.

    python tools/demo.py det   # RetinaNet-PVTv2-b0, COCO-format shapes dataset -> COCO box AP
    python tools/demo.py seg   # Semantic FPN-PVTv2-b0, ADE20K-layout shapes dataset -> mIoU
    python tools/demo.py depth # GLPN-PVTv2-b0, NYU-layout depth dataset -> depth metrics (pvt_det.tools.demo_depth)
    python tools/demo.py panoptic  # Mask2Former-PVTv2-b0, COCO panoptic layout -> PQ (pvt_det.tools.demo_panoptic)

Each writes its dataset (<work dir>/data) and a config that inherits the shipped one, as a user's
own dataset config would (<work dir>/configs/), trains from scratch on the CPU through the same
code as tools/train.py, then evaluates. The runner saves the merged config next to the
checkpoints (<work dir>/<config name>.py). Exits 1 if the score did not rise above zero.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pvt_det.cli import ToolError, cli_main
from pvt_det.datasets import SHAPE_CLASSES, make_ade20k_dataset, make_coco_dataset
from pvt_det.tools.demo_training import prepare_demo, train_demo

DET_CONFIG = '''# Written by tools/demo.py: RetinaNet-PVTv2-b0 on a generated COCO-format dataset.
_base_ = {base!r}
data_root = {data_root!r}
metainfo = dict(classes={classes!r})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# From scratch (no ImageNet weights offline), 3 classes.
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes={num_classes}))
# A short iteration-based run with a higher lr than the COCO fine-tuning recipe.
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters}, val_interval={iters})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end={warmup}),
    dict(type='CosineAnnealingLR', by_epoch=False, begin={warmup}, end={iters}, eta_min_ratio=0.05)
]
optim_wrapper = dict(optimizer=dict(lr={lr}), clip_grad=dict(max_norm=10.0))
default_hooks = dict(logger=dict(interval={log_every}),
                     checkpoint=dict(by_epoch=False, interval={iters}))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''

SEG_CONFIG = '''# Written by tools/demo.py: Semantic FPN-PVTv2-b0 on a generated ADE20K-layout dataset.
_base_ = {base!r}
data_root = {data_root!r}
metainfo = dict(classes={classes!r}, palette={palette!r})
crop_size = ({size}, {size})
data_preprocessor = dict(size=crop_size)  # batches padded to the crop, as mmseg's configs do
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=({size}, {size}), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
# Own class names: ADE20KDataset only accepts subsets of the 150 ADE20K names, so use mmseg's
# generic dataset with ADE20K's file suffixes and label convention (0 = ignored "other").
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    dataset=dict(**dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(data_preprocessor=data_preprocessor, backbone=dict(init_cfg=None),
             decode_head=dict(num_classes={num_classes}))
train_cfg = dict(max_iters={iters}, val_interval={iters})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end={warmup}),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin={warmup}, end={iters})
]
optim_wrapper = dict(optimizer=dict(lr={lr}))
default_hooks = dict(logger=dict(interval={log_every}),
                     checkpoint=dict(by_epoch=False, interval={iters}))
randomness = dict(seed=0)
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train and evaluate on a generated dataset (CPU)')
    parser.add_argument('task', choices=['det', 'seg', 'depth', 'panoptic'], help='det: RetinaNet + COCO AP; '
                        'seg: Semantic FPN + mIoU; depth: GLPN + depth metrics against the training mean; '
                        'panoptic: Mask2Former + PQ')
    parser.add_argument('--work-dir', help='default: work_dirs/demo (det) or work_dirs/demo_seg')
    parser.add_argument('--iters', type=int, help='training iterations (default: 300 for det, 80 for seg)')
    parser.add_argument('--config', help='shipped config to inherit (default: '
                        'configs/retinanet_pvt_v2_b0_fpn.py or configs/sem_fpn_pvt_v2_b0_ade20k.py)')
    return parser.parse_args(argv)


def write_det_demo(work_dir: Path, base: Path, iters: int) -> Path:
    data_root = work_dir / 'data'
    make_coco_dataset(data_root, num_train=64, num_val=16, image_size=(128, 128), seed=0)
    config = work_dir / 'configs' / 'retinanet_pvt_v2_b0_shapes.py'
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(DET_CONFIG.format(
        base=str(base), data_root=f'{data_root}/', classes=SHAPE_CLASSES, size=128, batch=2,
        num_classes=len(SHAPE_CLASSES), iters=iters, warmup=max(iters // 10, 1), lr=3e-4,
        log_every=max(iters // 10, 1)))
    return config


def write_seg_demo(work_dir: Path, base: Path, iters: int) -> Path:
    data_root = work_dir / 'data'
    classes = ('background',) + SHAPE_CLASSES
    make_ade20k_dataset(data_root, num_train=32, num_val=8, image_size=(128, 128), classes=classes)
    palette = [[120, 120, 120], [220, 40, 40], [40, 200, 40], [40, 80, 220]]
    config = work_dir / 'configs' / 'sem_fpn_pvt_v2_b0_shapes.py'
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(SEG_CONFIG.format(
        base=str(base), data_root=str(data_root), classes=classes, palette=palette, size=128,
        batch=4, num_classes=len(classes), iters=iters, warmup=max(iters // 10, 1), lr=1e-3,
        log_every=max(iters // 10, 1)))
    return config


def majority_class_miou(label_dir: Path, num_classes: int) -> float:
    """Chance level for the seg demo: mIoU (%) of predicting the most frequent class everywhere.

    With ``reduce_zero_label`` (0 ignored, k -> k - 1) that class scores IoU = its pixel share,
    every other present class 0; a model must beat this to have learned anything.
    """
    import cv2
    import numpy as np
    counts = np.zeros(num_classes + 1, dtype=np.int64)
    for path in label_dir.glob('*.png'):
        counts += np.bincount(cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ravel(),
                              minlength=num_classes + 1)[:num_classes + 1]
    counts = counts[1:]  # drop the ignored label 0
    present = counts > 0
    return 100.0 * counts.max() / counts.sum() / present.sum()


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.task == 'depth':  # work_dirs/demo_depth, configs/glpn_pvt_v2_b0_nyu.py, 40 iterations by default
        from pvt_det.tools.demo_depth import run_depth_demo
        run_depth_demo(args.work_dir, args.config, args.iters)
        return
    if args.task == 'panoptic':  # work_dirs/demo_panoptic, configs/mask2former_pvt_v2_b2_coco_panoptic.py
        from pvt_det.tools.demo_panoptic import run_panoptic_demo
        run_panoptic_demo(args.work_dir, args.config, args.iters)
        return
    det = args.task == 'det'
    iters = args.iters or (300 if det else 80)  # seg iterations cost ~4x a det one on CPU
    work_dir, config = prepare_demo(
        args.work_dir, 'work_dirs/demo' if det else 'work_dirs/demo_seg', args.config,
        'retinanet_pvt_v2_b0_fpn.py' if det else 'sem_fpn_pvt_v2_b0_ade20k.py', iters,
        write_det_demo if det else write_seg_demo)

    metrics, minutes = train_demo(config, work_dir)
    score_name = 'coco/bbox_mAP' if det else 'mIoU'
    score = metrics.get(score_name)
    print('=' * 72)
    if det:
        print(f'RetinaNet-PVTv2-b0 on the generated COCO-format val set after {iters} iterations '
              f'({minutes:.1f} min, train + eval):')
        for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75'):
            print(f'  COCO {key}: {metrics.get("coco/" + key, float("nan")):.3f}')
    else:
        print(f'Semantic FPN-PVTv2-b0 on the generated ADE20K-layout val set after {iters} '
              f'iterations ({minutes:.1f} min, train + eval):')
        for key in ('mIoU', 'mAcc', 'aAcc'):
            print(f'  {key}: {metrics.get(key, float("nan")):.2f}')
        chance = majority_class_miou(work_dir / 'data' / 'annotations' / 'validation',
                                    num_classes=len(SHAPE_CLASSES) + 1)
        print(f'  chance mIoU (every pixel the most frequent class): {chance:.2f}')
    print(f'checkpoint: {work_dir / f"iter_{iters}.pth"}')
    print('=' * 72)
    if not score or score <= 0:
        raise ToolError(f'{score_name} did not rise above zero ({score}); '
                                     'see the training log in ' + str(work_dir))
    if not det and score <= chance:
        raise ToolError(f'mIoU {score:.2f} is not above chance ({chance:.2f}); '
                                     'see the training log in ' + str(work_dir))


if __name__ == '__main__':
    sys.exit(main())
