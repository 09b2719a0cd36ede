# The PVT papers' 1x COCO schedule: 12 epochs, lr x0.1 after epochs 8 and 11, 500-iteration linear
# warm-up, AdamW (lr 1e-4, weight decay 1e-4) at 16 images per step (8 GPUs x 2).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))

# `--auto-scale-lr` rescales lr linearly by (GPUs x batch_size) / base_batch_size.
auto_scale_lr = dict(enable=False, base_batch_size=16)
