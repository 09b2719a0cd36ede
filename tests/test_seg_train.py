"""Semantic FPN trains, checkpoints, tests (mIoU) and infers through tools/*.py on generated
ADE20K-layout data, with configs written the way a user writes them: a file outside the project
that inherits a shipped config and points it at its own data."""
import json
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from pvt_det.datasets.synthetic import make_ade20k_dataset
from helpers import SEG_64PX_PIPELINES, SEG_64PX_PREPROCESSOR, run_tool_in_process

REPO_ROOT = Path(__file__).resolve().parent.parent
ITERS = 4

# Small fixed-size inputs: no random resize/crop, so every iteration sees the same two images
# and the loss must fall within a few steps (lr 10x the paper's to make that quick).
USER_CONFIG = '''\
_base_ = {base!r}
data_root = {data_root!r}
''' + SEG_64PX_PREPROCESSOR + SEG_64PX_PIPELINES + '''\
dataset = dict(data_root=data_root{own_classes})
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(**dataset, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
# No ImageNet weights offline: train from scratch.
model = dict(data_preprocessor=data_preprocessor, backbone=dict(init_cfg=None){num_classes})
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(interval={iters}), logger=dict(interval=1))
'''

# The generator's own class names, as docs/segmentation.md shows: ADE20KDataset accepts only
# subsets of the 150 ADE20K names, so mmseg's generic dataset with ADE20K's conventions.
OWN_CLASSES = ('background', 'square', 'circle', 'triangle')
OWN_DATASET = (", type='BaseSegDataset', img_suffix='.jpg', seg_map_suffix='.png', "
               f"reduce_zero_label=True, metainfo=dict(classes={OWN_CLASSES!r})")


def _run(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = run_tool_in_process(Path(tool).stem, *args, cwd=cwd)  # as `python tools/<tool> ARGS` in cwd
    assert result.returncode == 0, \
        f'{tool} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result


def _train_and_test(tmp_path: Path, shipped_config: str, own_classes: bool) -> dict:
    """Write a user config inheriting ``shipped_config``, train it, test its checkpoint."""
    data_root = tmp_path / 'my_ade'
    make_ade20k_dataset(data_root, num_train=2, num_val=2, image_size=(64, 64),
                        classes=OWN_CLASSES, seed=1)
    config = tmp_path / 'my_sem_fpn.py'
    config.write_text(USER_CONFIG.format(
        base=str(REPO_ROOT / 'configs' / shipped_config), data_root=str(data_root), iters=ITERS,
        own_classes=OWN_DATASET if own_classes else '',
        num_classes=f', decode_head=dict(num_classes={len(OWN_CLASSES)})' if own_classes else ''))
    work_dir = tmp_path / 'work'
    # cwd outside the repository: nothing of the project is touched or relied on by relative path.
    _run('train.py', str(config), '--work-dir', str(work_dir), cwd=tmp_path)
    checkpoint = work_dir / f'iter_{ITERS}.pth'
    assert checkpoint.is_file()
    scalars = next(work_dir.glob('*/vis_data/scalars.json'))
    losses = [json.loads(line)['loss'] for line in scalars.read_text().splitlines()
              if '"loss"' in line]
    tested = _run('test.py', str(config), str(checkpoint), '--work-dir', str(work_dir / 'test'),
                  cwd=tmp_path)
    miou = re.search(r'^mIoU: ([\d.]+)$', tested.stdout, re.MULTILINE)
    assert miou, tested.stdout[-2000:]
    return dict(config=config, checkpoint=checkpoint, losses=losses, miou=float(miou.group(1)),
                data_root=data_root)


@pytest.mark.slow
def test_sem_fpn_pvt_tiny_trains_saves_and_tests(tmp_path):
    run = _train_and_test(tmp_path, 'sem_fpn_pvt_tiny_ade20k.py', own_classes=False)
    assert len(run['losses']) == ITERS and all(np.isfinite(run['losses']))
    assert run['losses'][-1] < run['losses'][0], run['losses']
    assert 0.0 <= run['miou'] <= 100.0


@pytest.fixture(scope='module')
def trained_b0(tmp_path_factory):
    return _train_and_test(tmp_path_factory.mktemp('b0'), 'sem_fpn_pvt_v2_b0_ade20k.py',
                           own_classes=True)


@pytest.mark.slow
def test_user_config_inheriting_pvt_v2_b0_trains_and_tests(trained_b0):
    assert len(trained_b0['losses']) == ITERS and all(np.isfinite(trained_b0['losses']))
    assert trained_b0['losses'][-1] < trained_b0['losses'][0], trained_b0['losses']
    assert 0.0 <= trained_b0['miou'] <= 100.0
    # The shipped configs were only read: no work_dirs/ or data/ appeared in the repository.
    assert not (REPO_ROOT / 'work_dirs' / 'my_sem_fpn').exists()


@pytest.mark.slow
def test_infer_draws_the_segmentation(trained_b0, tmp_path):
    image_path = next((trained_b0['data_root'] / 'images' / 'validation').glob('*.jpg'))
    out_dir = tmp_path / 'pred'
    _run('infer.py', str(image_path), str(trained_b0['config']), str(trained_b0['checkpoint']),
         '--out-dir', str(out_dir), cwd=tmp_path)
    image = cv2.imread(str(image_path))
    drawn = cv2.imread(str(out_dir / f'{image_path.stem}_pred.jpg'))
    label_map = cv2.imread(str(out_dir / f'{image_path.stem}_pred.png'), cv2.IMREAD_UNCHANGED)
    assert drawn.shape == image.shape and label_map.shape == image.shape[:2]
    # mmseg's visualizer blends the class colours over the image: the drawing is not the input.
    assert np.abs(drawn.astype(int) - image.astype(int)).mean() > 5
    predictions = json.loads((out_dir / f'{image_path.stem}_pred.json').read_text())['predictions']
    assert {p['label'] for p in predictions} == set(np.unique(label_map).tolist())
    assert {p['class'] for p in predictions} <= set(OWN_CLASSES)
    assert sum(p['fraction'] for p in predictions) == pytest.approx(1.0, abs=1e-3)
