"""``make demo-panoptic``, smaller: Mask2Former-PVTv2-b0 trains from scratch on the generated COCO panoptic
set and its PQ (mmdet's CocoPanopticMetric through panopticapi) rises above the untrained model's; then
tools/infer.py draws its segments."""
from __future__ import annotations

import argparse
import json

import pytest

ITERS = 24  # the demo trains 60 on 48 images; this run, 24 on 16 (both at 64 px, 4 images a step)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from pvt_det.config.loading import shipped_config
    from pvt_det.tools.demo_panoptic import write_panoptic_demo
    from pvt_det.tools.runner import build_runner
    from pvt_det.tools.train import prepare_train_config
    work = tmp_path_factory.mktemp('demo_panoptic')
    config = write_panoptic_demo(work, shipped_config('mask2former_pvt_v2_b2_coco_panoptic.py').resolve(),
                                 ITERS, num_train=16, num_val=4, queries=10)
    runner = build_runner(prepare_train_config(argparse.Namespace(
        config=str(config), work_dir=str(work), amp=False, auto_scale_lr=False, resume=None,
        cfg_options=None, launcher='none')))
    before = runner.val()
    runner.train()
    after = {key[len('val/'):]: buffer.current()
             for key, buffer in runner.message_hub.log_scalars.items() if key.startswith('val/')}
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    return work, config, before, after, losses


@pytest.mark.slow
def test_training_raises_pq(trained):
    _, _, before, after, losses = trained
    assert after['coco_panoptic/PQ'] > 0
    assert after['coco_panoptic/PQ'] > before['coco_panoptic/PQ']
    assert after['coco_panoptic/PQ_st'] > before['coco_panoptic/PQ_st']
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_infer_draws_the_trained_model_segments(trained, tmp_path):
    from pvt_det.tools.infer import infer
    work, config, _, _, _ = trained
    image = sorted((work / 'data' / 'val2017').glob('*.jpg'))[0]
    paths = infer(str(image), str(config), str(work / f'iter_{ITERS}.pth'), str(tmp_path))
    assert {'image', 'segments', 'json'} <= set(paths) and all(p.is_file() for p in paths.values())
    segments = json.loads(paths['json'].read_text())['segments_info']
    assert any(not segment['isthing'] and segment['class'] in ('sky', 'ground') for segment in segments)
