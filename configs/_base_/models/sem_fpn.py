# Semantic FPN (Kirillov et al., 2019) for mmseg 1.x with a PVT backbone, as the PVT papers
# use it on ADE20K: FPN to 256 channels at strides 4/8/16/32, then FPNHead with 128 channels.
# The backbone here is PVT-Small; leaf configs change only `backbone` and `neck.in_channels`.
default_scope = 'mmseg'
custom_imports = dict(imports=['pvt_det'], allow_failed_imports=False)

# mmengine reverts SyncBN to plain BN in non-distributed runs.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    # Pads each batch to a multiple of the coarsest stride instead of to a fixed crop size, so a
    # config that changes the crop (or tests whole images) needs no edit here.
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='PVT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_small.pth')),
    neck=dict(
        type='FPN',
        in_channels=[64, 128, 320, 512],
        out_channels=256,
        num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[256, 256, 256, 256],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=128,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
