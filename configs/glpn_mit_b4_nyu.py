# GLPN (Kim et al., "Global-Local Path Networks for Monocular Depth Estimation with Vertical CutDepth", 2022) on
# NYU Depth V2, as published: MiT-b4 encoder, GLPN decoder + depth head (max depth 10 m), SiLog loss, 448x576
# crops with vertical CutDepth, Adam, 25 epochs at batch 12. Paper, NYU test (Eigen crop): d1 0.915, d2 0.988,
# d3 0.997, AbsRel 0.098, RMSE 0.344, log10 0.042 (docs/depth.md).
# mmseg's NYU base gives the layout (data/nyu/{images,annotations}/{train,test}), the test pipeline (the whole
# 480x640 image) and DepthMetric with the Eigen crop ('nyu_crop'), as GLPN evaluates.
_base_ = ['mmseg::_base_/datasets/nyu.py', 'mmseg::_base_/default_runtime.py',
          './_base_/models/pvt_backbones.py']

crop_size = (448, 576)  # GLPN's NYU training crop (height, width)
max_depth = 10.0
# GLPN feeds RGB scaled to [0, 1] with no mean/std normalisation (GLPNImageProcessor: rescale only).
# Padded depth is 0 (= no measurement, ignored by SiLogLoss and DepthMetric), never mmseg's seg default 255.
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=True,
    pad_val=0, seg_pad_val=0, size=crop_size, test_cfg=dict(size_divisor=32))
model = dict(
    type='DepthEstimator',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='PVTv2', arch='mit_b4', out_indices=(0, 1, 2, 3), drop_path_rate=0.1,
        # SegFormer's ImageNet-1k MiT-b4, which GLPN starts from (mmseg's copy; NVlabs' mit_b4.pth loads too)
        init_cfg=dict(type='Pretrained', checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/'
                      'pretrain/segformer/mit_b4_20220624-d588d980.pth')),
    decode_head=dict(
        type='GLPNHead', in_channels=[64, 128, 320, 512], in_index=[0, 1, 2, 3], channels=64, max_depth=max_depth,
        loss_decode=dict(type='SiLogLoss')),
    test_cfg=dict(mode='whole'))

# GLPN's augmentation, in its order: vertical CutDepth (mmseg's RandomDepthMix is GLPN's code: a quarter of the
# images get a vertical strip of up to 75% of the rest of the width replaced by the depth map), horizontal flip,
# crop, then colour. GLPN's colour step is albumentations' brightness/contrast, gamma and hue/saturation/value;
# albumentations is not in pvt_det's environment, so mmseg's PhotoMetricDistortion stands in with GLPN's
# brightness (+-0.2 x 255), contrast (+-20%) and hue (+-20) ranges, and no gamma.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='RandomDepthMix', prob=0.25, mix_scale_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PhotoMetricDistortion', brightness_delta=51, contrast_range=(0.8, 1.2),
         saturation_range=(0.8, 1.2), hue_delta=20),
    dict(type='PackSegInputs',
         meta_keys=('img_path', 'depth_map_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor',
                    'flip', 'flip_direction', 'category_id')),
]
train_dataloader = dict(batch_size=12, dataset=dict(pipeline=train_pipeline))

# GLPN's schedule: Adam, 25 epochs of 2019 iterations (24,231 images / 12), the lr rising from 3e-5 to 1e-4
# over the first 12 epochs and falling back after (GLPN's ramps have power 0.9; these linear ones stay within
# 3e-6 of its lr at every iteration, ending where GLPN's does, 2.48e-5).
iters_per_epoch = 2019
max_iters = 25 * iters_per_epoch
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999),
                                                         weight_decay=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.3, end_factor=1.0, by_epoch=False, begin=0,
         end=12 * iters_per_epoch),
    dict(type='PolyLR', power=1.0, eta_min=2.477e-5, by_epoch=False, begin=12 * iters_per_epoch,
         end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=iters_per_epoch)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=iters_per_epoch, save_best='rmse',
                    rule='less', max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
