# Mask2Former, PVTv2-B2 backbone, COCO panoptic (133 classes: 80 things, 53 stuff): mmdet's Mask2Former
# recipe, its Swin-T panoptic config value for value (LSJ 1024 crops, 16 images per step, AdamW lr 1e-4
# wd 0.05, clip 0.01, 368750 iterations, 100 queries, 9 decoder layers, PQ + box/mask AP evaluation),
# with the backbone swapped. What follows the backbone: the backbone itself (PVTv2-B2 from the ImageNet
# checkpoint, drop path 0.1 as in PVT v2's dense-prediction configs; Swin-T's recipe has 0.3), the head's
# in_channels (PVTv2's stage widths at strides 4-32), and the optimizer's per-norm keys (models/
# mask2former_pvt_v2.py in the base folder). No published PVTv2 Mask2Former result; mmdet's Swin-T model
# of this recipe, COCO val2017 PQ: 53.4.
_base_ = [
    'mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py',
    '_base_/models/pvt_backbones.py',
    '_base_/models/mask2former_pvt_v2.py',
]
depths = [3, 4, 6, 3]  # mmdet's Swin config keeps its backbone's depths here; these are PVTv2-B2's
pretrained = _base_.pvt_v2_b2_backbone.init_cfg.checkpoint
model = dict(backbone=dict(_base_.pvt_v2_b2_backbone, _delete_=True),
             panoptic_head=dict(in_channels=[64, 128, 320, 512]))
custom_keys = _base_.mask2former_pvt_v2_b2_custom_keys
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(custom_keys, _delete_=True)))
