# The PVT papers' 1x COCO schedule: mmdet's 1x (12 epochs, lr x0.1 after epochs 8 and 11,
# 500-iteration linear warm-up; `--auto-scale-lr` from batch 16) with AdamW (lr 1e-4, weight decay
# 1e-4) in place of SGD, at 16 images per step (8 GPUs x 2).
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=1e-4))
