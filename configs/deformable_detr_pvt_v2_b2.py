# Deformable DETR on PVTv2-B2 (stages 2-4, strides 8/16/32, into the ChannelMapper, which adds a
# fourth, stride-64 level): mmdet's Deformable DETR recipe unchanged (300 queries, 50 epochs, lr x0.1
# after epoch 40, AdamW lr 2e-4 with the backbone, sampling offsets and reference points at 0.1x,
# 32 images per step), the pairing the PVT v2 documentation shows.
# No published PVTv2 result. mmdet's ResNet-50 model of this recipe (not PVT), COCO val2017 box AP: 44.3.
_base_ = [
    'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    '_base_/models/pvt_backbones.py'
]
model = dict(backbone=dict(_base_.pvt_v2_b2_backbone, _delete_=True, out_indices=(1, 2, 3)),
             neck=dict(in_channels=[128, 320, 512]))
