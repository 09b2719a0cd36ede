"""tools/train.py end to end: SIGKILL + --resume repeats an uninterrupted run (the launchers' runs, which
use this file's config, are in test_distributed.py). Tiny RetinaNet-PVTv2-b0 on a generated 64 px COCO
dataset."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pvt_det.datasets.synthetic import make_coco_dataset

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# 6 training images at batch size 2: 3 iterations per epoch, 9 in all.
TINY_CONFIG = """
_base_ = '{repo}/configs/retinanet_pvt_v2_b0_fpn.py'
data_root = '{data}/'
size = ({size}, {size})
model = dict(
    backbone=dict(init_cfg=None, drop_path_rate={drop_path}),
    neck=dict(out_channels=32),
    bbox_head=dict(num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1))
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=size, keep_ratio=True),
    dict(type='RandomFlip', prob={flip}), dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
metainfo = dict(classes=('square', 'circle', 'triangle'))
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={max_epochs}, val_interval={max_epochs})
param_scheduler = {schedule}
optim_wrapper = dict(optimizer=dict(lr=1e-3), accumulative_counts={accumulate})
default_hooks = dict(checkpoint=dict(interval=2, by_epoch=False), logger=dict(interval=1))
log_processor = dict(window_size=1)
randomness = dict(seed=0, deterministic=True)
"""
WARMUP_SCHEDULE = (
    "[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5), "
    "dict(type='MultiStepLR', by_epoch=True, begin=0, end=3, milestones=[2], gamma=0.1)]")


def write_config(path: Path, size=64, drop_path=0.1, flip=0.5, batch_size=2, max_epochs=3,
                 schedule=WARMUP_SCHEDULE, accumulate=1) -> Path:
    coco = path.parent / f'coco{size}'
    if not coco.exists():
        make_coco_dataset(coco, num_train=6, num_val=2, image_size=(size, size))
    path.write_text(
        TINY_CONFIG.format(repo=REPO, data=coco, size=size, drop_path=drop_path, flip=flip,
                           batch_size=batch_size, max_epochs=max_epochs, schedule=schedule,
                           accumulate=accumulate))
    return path


def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONPATH=str(REPO))


def train_cmd(config: Path, work_dir: Path, *extra: str) -> list[str]:
    return [PYTHON, str(REPO / 'tools/train.py'), str(config), '--work-dir', str(work_dir), *extra]


def run(cmd: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def logged(work_dir: Path) -> tuple[dict[int, dict], dict]:
    """Per-iteration training scalars and the last validation metrics of every run in work_dir."""
    train, val = {}, {}
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                train[record['iter']] = record
            elif any(key.startswith('coco/') for key in record):
                val = record
    return train, val


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    """All three runs use --amp: bfloat16 autocast on the CPU (float16 on CUDA) works end to end
    and is deterministic, so resume is bit-exact (at 64 px this also exercises the guard that
    keeps FPN's P7 conv on a 1x1 map out of torch's faulty CPU bfloat16 conv backward)."""
    config = write_config(tmp_path / 'tiny.py')
    run(train_cmd(config, tmp_path / 'reference', '--amp'))
    dumped = (tmp_path / 'reference' / 'tiny.py').read_text()
    assert ('AmpOptimWrapper'
            if torch.cuda.is_available() else "type='CPUAmpOptimWrapper'") in dumped
    reference, reference_val = logged(tmp_path / 'reference')
    assert sorted(reference) == list(range(1, 10))

    work_dir = tmp_path / 'killed'
    proc = subprocess.Popen(train_cmd(config, work_dir, '--amp'), cwd=REPO, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = work_dir / 'last_checkpoint'
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if pointer.exists() and pointer.read_text().endswith('iter_4.pth'):
            break
        time.sleep(0.02)
    assert proc.poll() is None, 'training finished or crashed before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = int(pointer.read_text().rsplit('iter_', 1)[1].split('.')[0])
    assert 4 <= resumed_from < 9  # killed mid-run, after the iteration-4 checkpoint

    run(train_cmd(config, work_dir, '--amp', '--resume'))
    runs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert len(runs) == 2
    after_resume = {
        json.loads(line)['iter']: json.loads(line)
        for line in runs[1].read_text().splitlines() if 'loss' in json.loads(line)
    }
    # Continues at the next iteration, with the same learning rate and exactly the same losses.
    assert sorted(after_resume) == list(range(resumed_from + 1, 10))
    for it, record in after_resume.items():
        assert record['lr'] == reference[it]['lr'], it
        assert record['loss'] == reference[it]['loss'], (it, record['loss'], reference[it]['loss'])
    _, resumed_val = logged(work_dir)
    assert resumed_val['coco/bbox_mAP'] == reference_val['coco/bbox_mAP']
    # The final weights are identical as well.
    final_ref = torch.load(tmp_path / 'reference' / 'iter_9.pth', weights_only=True)['state_dict']
    final_resumed = torch.load(work_dir / 'iter_9.pth', weights_only=True)['state_dict']
    assert all(torch.equal(final_ref[k], final_resumed[k]) for k in final_ref)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
