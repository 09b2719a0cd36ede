# Mask2Former, PVTv2-B2 backbone, COCO instance segmentation (80 things, no stuff): mmdet's Mask2Former
# instance recipe, its Swin-T config value for value (the panoptic recipe's crops, schedule and optimizer;
# box + mask AP), with the backbone swapped exactly as in mask2former_pvt_v2_b2_coco_panoptic.py (backbone,
# head in_channels, per-norm optimizer keys follow the backbone). No published PVTv2 result; mmdet's Swin-T
# model of this recipe, COCO val2017 box / mask AP: 47.7 / 44.7.
_base_ = [
    'mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco.py',
    '_base_/models/pvt_backbones.py',
    '_base_/models/mask2former_pvt_v2.py',
]
depths = [3, 4, 6, 3]
pretrained = _base_.pvt_v2_b2_backbone.init_cfg.checkpoint
model = dict(backbone=dict(_base_.pvt_v2_b2_backbone, _delete_=True),
             panoptic_head=dict(in_channels=[64, 128, 320, 512]))
custom_keys = _base_.mask2former_pvt_v2_b2_custom_keys
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(custom_keys, _delete_=True)))
