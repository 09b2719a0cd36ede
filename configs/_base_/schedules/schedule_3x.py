# The PVTv2 3x COCO schedule (pair it with datasets/coco_instance_ms.py): 36 epochs, lr x0.1 after
# epochs 27 and 33, 500-iteration warm-up, AdamW lr 1e-4 with weight decay 0.05 (none on norms).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=36, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))

auto_scale_lr = dict(enable=False, base_batch_size=16)
