# Mask2Former, PVTv2-B5 backbone, COCO panoptic: the B2 config's recipe (mmdet's Swin panoptic recipe, which
# its Swin-B config keeps unchanged: same crops, schedule and optimizer) with the B5 backbone (same stage
# widths, so the head is unchanged) and B5's per-block optimizer keys. No published PVTv2 Mask2Former
# result; mmdet's Swin-B (ImageNet-1k, 384) model of this recipe, COCO val2017 PQ: 55.1.
_base_ = './mask2former_pvt_v2_b2_coco_panoptic.py'
depths = [3, 6, 40, 3]
pretrained = 'https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth'
model = dict(backbone=dict(arch='b5', init_cfg=dict(checkpoint=pretrained)))
custom_keys = _base_.mask2former_pvt_v2_b5_custom_keys
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(custom_keys, _delete_=True)))
