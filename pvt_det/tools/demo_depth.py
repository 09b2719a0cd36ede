"""``tools/demo.py depth`` (``make demo-depth``): GLPN-PVTv2-b0 trained from scratch on a generated NYU-layout
depth dataset, on the CPU, then mmseg's depth metrics next to those of predicting the training set's mean depth.

Writes the dataset (<work dir>/data) and a config inheriting configs/glpn_pvt_v2_b0_nyu.py (<work dir>/configs/),
trains through the same code as tools/train.py and evaluates. Exits 1 unless RMSE and AbsRel beat the mean.
"""
from __future__ import annotations

from pathlib import Path

from pvt_det.cli import ToolError
from pvt_det.datasets.synthetic_depth import make_nyu_depth_dataset, training_mean_metrics
from pvt_det.tools.demo_training import prepare_demo, train_demo

DEFAULT_CONFIG = 'glpn_pvt_v2_b0_nyu.py'
DEFAULT_ITERS = 40
DEFAULT_WORK_DIR = 'work_dirs/demo_depth'
# The metrics printed, as DepthMetric names them, and whether lower is better.
METRICS = (('d1', False), ('d2', False), ('d3', False), ('abs_rel', True), ('rmse', True), ('log10', True),
           ('sq_rel', True), ('silog', True))

DEPTH_CONFIG = '''# Written by tools/demo.py: GLPN-PVTv2-b0 on a generated NYU-layout depth dataset.
_base_ = {base!r}
data_root = {data_root!r}
data_preprocessor = dict(size={size!r})  # batches padded to the images' size
# The shipped training pipeline as it is (CutDepth, flip, colour; its 448x576 crop keeps these small images
# whole); testing on the whole image, no resize.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(crop_type=None)  # the Eigen crop is for NYU's 480x640 images
test_evaluator = val_evaluator

model = dict(data_preprocessor=data_preprocessor, backbone=dict(init_cfg=None))  # from scratch, offline
train_cfg = dict(max_iters={iters}, val_interval={iters})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end={warmup}),
    dict(type='PolyLR', power=0.9, eta_min=1e-5, by_epoch=False, begin={warmup}, end={iters})
]
optim_wrapper = dict(optimizer=dict(lr={lr}))
default_hooks = dict(logger=dict(interval={log_every}),
                     checkpoint=dict(interval={iters}, save_best=None))
randomness = dict(seed=0)
'''


def write_depth_demo(work_dir: Path, base: Path, iters: int, num_train: int = 32, num_test: int = 8,
                     image_size: tuple[int, int] = (64, 64), batch: int = 4,
                     lr: float = 1e-3) -> Path:
    """Write the generated dataset and the demo config under ``work_dir``; returns the config's path."""
    data_root = work_dir / 'data'
    make_nyu_depth_dataset(data_root, num_train=num_train, num_test=num_test, image_size=image_size, seed=0)
    config = work_dir / 'configs' / 'glpn_pvt_v2_b0_synthetic_depth.py'
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(DEPTH_CONFIG.format(
        base=str(base), data_root=str(data_root), size=tuple(image_size), batch=batch, iters=iters,
        warmup=max(iters // 10, 1), lr=lr, log_every=max(iters // 10, 1)))
    return config


def beats_mean(metrics: dict, baseline: dict) -> bool:
    """Whether the model is better than the training-mean prediction in RMSE and in AbsRel."""
    return all(metrics[key] < baseline[key] for key in ('rmse', 'abs_rel'))


def run_depth_demo(work_dir: str | None, config: str | None, iters: int | None) -> dict:
    """Train and evaluate (see the module docstring); returns the metrics. Raises ToolError if it learned nothing."""
    iters = iters or DEFAULT_ITERS
    work, config_path = prepare_demo(work_dir, DEFAULT_WORK_DIR, config, DEFAULT_CONFIG, iters, write_depth_demo)
    metrics, minutes = train_demo(config_path, work)
    metrics = {key.split('/')[-1]: value for key, value in metrics.items()}
    baseline = training_mean_metrics(work / 'data')
    print('=' * 72)
    print(f'GLPN-PVTv2-b0 on the generated NYU-layout test set after {iters} iterations '
          f'({minutes:.1f} min, train + eval):')
    print(f'  {"metric":<8} {"model":>9} {"training mean":>14}')
    for key, lower_better in METRICS:
        arrow = '(lower is better)' if lower_better else '(higher is better)'
        print(f'  {key:<8} {metrics.get(key, float("nan")):>9.4f} {baseline[key]:>14.4f}  {arrow}')
    print(f'checkpoint: {work / f"iter_{iters}.pth"}')
    print('=' * 72)
    if not beats_mean(metrics, baseline):
        raise ToolError(f'RMSE {metrics.get("rmse")} / AbsRel {metrics.get("abs_rel")} do not beat predicting '
                        f'the training mean ({baseline["rmse"]:.4f} / {baseline["abs_rel"]:.4f}); see the '
                        f'training log in {work}')
    return metrics
