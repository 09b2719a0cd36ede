# Sparse R-CNN + FPN, PVTv2-B2 backbone, 300 proposals, 3x schedule with multi-scale crop training
# (480-800): mmdet's config of the same name for ResNet-50 (6 stages of DIIHead, its FPN, optimizer
# AdamW lr 2.5e-5, weight decay 1e-4, gradient clipping at 1, and the crop pipeline all equal the
# official config's) with the official batch: 1 image per GPU at lr / 1.4.
# Official repository (whai362/PVT detection/README.md), COCO val2017 box AP: 50.1.
_base_ = [
    'mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_300-proposals_crop-ms-480-800-3x_coco.py',
    '_base_/models/pvt_backbones.py'
]
model = dict(backbone=dict(_base_.pvt_v2_b2_backbone, _delete_=True),
             neck=dict(in_channels=[64, 128, 320, 512]))
train_dataloader = dict(batch_size=1, num_workers=1)
optim_wrapper = dict(optimizer=dict(lr=2.5e-5 / 1.4))
auto_scale_lr = dict(base_batch_size=8)
