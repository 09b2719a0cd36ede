# The PVT papers' ADE20K schedule: mmseg's 80k-iteration schedule (validation and checkpoint every
# 8k) with AdamW (lr 1e-4, weight decay 1e-4) and poly decay (power 0.9) to 0, at batch 16 (4 GPUs
# x 4 images). The official code ran the same number of epochs as 8 GPUs x 4, lr 2e-4, 40k
# iterations; `--auto-scale-lr` rescales lr for other batches.
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
