# Example: the ResNet -> PVT swap applied to a detector pvt_det does not ship, starting from
# mmdet's own Faster R-CNN config (docs/swap_resnet.md). `mmdet::` reads the config from the
# installed mmdet package.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['pvt_det'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,  # drop ResNet's arguments (depth, norm_cfg, style, ...)
        type='PVTv2',
        arch='b2',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))

# The PVT recipe: AdamW instead of mmdet's SGD for ResNet.
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
