# The PVTv2 3x COCO schedule of the official *_3x_mstrain configs (Mask R-CNN, Cascade Mask R-CNN,
# ATSS, GFL): 36 epochs, lr x0.1 after epochs 27 and 33, the 1x schedule's 500-iteration linear
# warm-up, AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05 but none on parameters named
# *norm* (and the official, Swin-derived *absolute_pos_embed* / *relative_position_bias_table*,
# which name nothing in PVTv2), no gradient clipping, 16 images per step (8 GPUs x 2).
# The official `_fp16` configs trained it with apex mixed precision; here that is
# `tools/train.py --amp` (mmengine's AmpOptimWrapper), not a config setting.
# A 3x config inherits its 1x config and this file; the parts travel under names of their own
# (mmengine refuses two bases that define the same key) and it applies them with
#     optim_wrapper = dict(_base_.optim_wrapper_3x, _delete_=True)
#     param_scheduler = _base_.param_scheduler_3x
#     train_cfg = _base_.train_cfg_3x
train_cfg_3x = dict(type='EpochBasedTrainLoop', max_epochs=36, val_interval=1)
param_scheduler_3x = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
optim_wrapper_3x = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
