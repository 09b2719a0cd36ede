# The PVT backbones the configs put into the detectors and segmentors they inherit from mmdet and
# mmseg. They travel under names of their own (mmengine refuses two bases that define the same key,
# and mmdet's configs already define `model`); a config places one with
#     model = dict(backbone=dict(_base_.pvt_v2_b2_backbone, _delete_=True))
# `_delete_` drops the inherited ResNet's keys (depth, norm_cfg, frozen_stages, ...).
# Every config that uses one inherits this file, and with it the import that registers PVT/PVTv2
# (and CvT) in mmdet's and mmseg's registries before the model is built.
custom_imports = dict(imports=['pvt_det'], allow_failed_imports=False)
pvt_small_backbone = dict(
    type='PVT',
    arch='small',
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_small.pth'))
pvt_v2_b2_backbone = dict(
    pvt_small_backbone,
    type='PVTv2',
    arch='b2',
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth'))
pvt_v2_b2_li_backbone = dict(
    pvt_v2_b2_backbone,
    arch='b2_li',
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2_li.pth'))
# SegFormer's MiT-b0 as PVTv2, from mmseg's ImageNet file (mmseg's segformer configs start from it)
mit_b0_backbone = dict(
    pvt_v2_b2_backbone,
    arch='mit_b0',
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/'
                  'mit_b0_20220624-7e0fe6dd.pth'))
