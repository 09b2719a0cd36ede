# mmdet's Mask R-CNN + FPN with a PVT-Small backbone, as in the PVT papers' COCO experiments.
# Leaf configs change only the backbone (arch, pretrained file) and, when the widths differ,
# `neck.in_channels`. FPN uses all four backbone stages (strides 4-32) plus a max-pooled P6.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './pvt_backbones.py']
model = dict(backbone=dict(_base_.pvt_small_backbone, _delete_=True),
             neck=dict(in_channels=[64, 128, 320, 512]))
