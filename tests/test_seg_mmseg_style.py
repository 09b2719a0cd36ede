"""A Semantic FPN config written the way mmseg's configs are (issue 15): the crop size goes to the
data preprocessor with ``data_preprocessor = dict(size=crop_size)`` and
``model = dict(data_preprocessor=data_preprocessor)``. Over ``configs/sem_fpn_*`` it trains
unchanged: the shipped preprocessor pads training batches to a size (512x512, mmseg's way) and test
images to a multiple of 32 through its ``test_cfg``; it has no ``size_divisor`` for training, which
mmseg's ``stack_batch`` refuses next to a ``size``."""
import json
from pathlib import Path

import numpy as np
from mmengine.config import Config

from pvt_det.datasets.synthetic import make_ade20k_dataset
from helpers import seg_64px_config

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
ITERS = 4

# The crop set in the data preprocessor, as mmseg's own configs do.
MMSEG_STYLE = seg_64px_config(preprocessor='''\
crop_size = (64, 64)
data_preprocessor = dict(size=crop_size)
''') + '''\
visualizer = dict(name='vis_mmseg_style')
'''


def test_shipped_preprocessor_follows_mmseg():
    model = Config.fromfile(str(CONFIGS / 'sem_fpn_pvt_v2_b0_ade20k.py')).model
    preprocessor = {k: v for k, v in model.data_preprocessor.items() if k != '_scope_'}
    assert preprocessor['size'] == (512, 512) and preprocessor['test_cfg'] == dict(size_divisor=32)
    assert 'size_divisor' not in preprocessor


def test_sem_fpn_written_the_mmseg_way_trains(tmp_path):
    from pvt_det.tools import train as train_tool
    data_root = tmp_path / 'ade'
    make_ade20k_dataset(data_root, num_train=2, num_val=2, image_size=(64, 64), seed=4)
    config = tmp_path / 'my_sem_fpn.py'
    config.write_text(MMSEG_STYLE.format(base=str(CONFIGS / 'sem_fpn_pvt_v2_b0_ade20k.py'),
                                         data_root=str(data_root), iters=ITERS))
    cfg = Config.fromfile(str(config))
    assert cfg.model.data_preprocessor.size == (64, 64)  # the user's crop reached the preprocessor
    work_dir = tmp_path / 'work'
    assert train_tool.main([str(config), '--work-dir', str(work_dir)]) == 0
    scalars = next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()
    losses = [json.loads(line)['loss'] for line in scalars if '"loss"' in line]
    assert len(losses) == ITERS and all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses  # the same two images every step: it learns
    metrics = [json.loads(line) for line in scalars if '"mIoU"' in line]
    assert metrics and 0.0 <= metrics[-1]['mIoU'] <= 100.0  # validated on whole 64 px images
