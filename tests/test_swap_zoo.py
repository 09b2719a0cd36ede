"""The swap walks mmdet's and mmseg's own config zoos (issue 21).

One ResNet-50 config per family of the installed zoos; for each whose unswapped model trains one step on
two generated 64 px images (CPU), tools/swap_backbone.py's code swaps it to pvt_v2_b0 (no weights
downloaded): the written leaf config builds, trains one step (finite loss, gradients reach the backbone) and
predicts, or the tool refused it in one line. The default suite walks a sample; the whole walk is

    PVT_DET_SWAP_ZOO=all .venv/bin/python -m pytest -q tests/test_swap_zoo.py     (or: make swap-zoo)

which also writes its table to $PVT_DET_SWAP_ZOO_TABLE when set (docs/swap_resnet.md shows the last one).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pvt_det  # noqa: F401  (mmdet::/mmseg:: configs, registries)
from pvt_det.cli import ToolError

SIZE = 64
ZOOS = {'mmdet': 'det', 'mmseg': 'seg'}
# The default suite's sample: an FPN detector whose head runs mmcv's deformable convs (which need contiguous
# maps: PVT's token-to-map reshape must not hand them a strided view), a dilated mmseg model read through
# in_index, and a refusal (deformable convs inside the ResNet stages).
SAMPLE = ('mmdet::reppoints/reppoints-moment_r50_fpn_1x_coco.py',
          'mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py',
          'mmdet::dcn/faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco.py')


def zoo_configs() -> list[str]:
    """One ResNet-50 config per family (folder) of each installed zoo: the shortest file name with r50."""
    found = []
    for package in ('mmseg', 'mmdet'):  # mmseg first: its models read the backbone without a neck
        root = Path(__import__(package).__file__).parent / '.mim' / 'configs'
        for family in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('_')):
            names = sorted((p.name for p in family.glob('*.py') if re.search(r'r50|r-50|resnet50', p.name)),
                           key=lambda name: (len(name), name))
            if names:
                found.append(f'{package}::{family.name}/{names[0]}')
    return found


# ------------------------------------------------------------------------------------------- one step
def _without_downloads(node) -> None:
    """No pretrained weights anywhere (the walk runs offline): init_cfg Pretrained and model.pretrained."""
    if isinstance(node, dict):
        if node.get('pretrained') is not None and isinstance(node.get('pretrained'), str):
            node['pretrained'] = None
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            _without_downloads(value)
    elif isinstance(node, list):
        for value in node:
            _without_downloads(value)


def _batch(task: str, num_classes: int) -> dict:
    """Two generated images with two objects each, as a data loader yields them."""
    from mmengine.structures import InstanceData, PixelData
    rng = np.random.default_rng(0)
    inputs, samples = [], []
    boxes = np.array([[4, 6, 30, 40], [20, 24, 60, 58]], dtype=np.float32)
    for index in range(2):
        inputs.append(torch.from_numpy(rng.integers(0, 255, (3, SIZE, SIZE), dtype=np.uint8)))
        meta = dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                    scale_factor=(1.0, 1.0), img_id=index, flip=False, flip_direction=None)
        semantic = np.zeros((1, SIZE, SIZE), dtype=np.int64)
        for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
            semantic[0, y0:y1, x0:x1] = min(i + 1, num_classes - 1)
        if task == 'seg':
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(semantic))
        else:
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            sample = DetDataSample(metainfo=meta)
            masks = np.zeros((2, SIZE, SIZE), dtype=np.uint8)
            for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
                masks[i, y0:y1, x0:x1] = 1
            sample.gt_instances = InstanceData(bboxes=torch.from_numpy(boxes), labels=torch.tensor([0, 1]),
                                               masks=BitmapMasks(masks, SIZE, SIZE))
            sample.gt_ignore_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long())
            sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(semantic))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _num_classes(node, found=None) -> int:
    found = [] if found is None else found
    if isinstance(node, dict):
        if isinstance(node.get('num_classes'), int):
            found.append(node['num_classes'])
        for value in node.values():
            _num_classes(value, found)
    elif isinstance(node, list):
        for value in node:
            _num_classes(value, found)
    return min(found) if found else 2


def train_one_step(cfg) -> str:
    """Build ``cfg.model``, take one training step and predict; raise with the reason if it cannot.
    Returns a short account (loss, backbone gradient)."""
    from mmengine.registry import DefaultScope
    from pvt_det.config.registries import registry
    from pvt_det.config.loading import register_scope
    from pvt_det.tools.run_options import adapt_to_machine
    task = register_scope(cfg)
    adapt_to_machine(cfg)  # SyncBN -> BN outside a process group, as tools/train.py does
    _without_downloads(cfg.model)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry(task, 'MODELS').build(cfg.model)
        model.init_weights()
        model.train()
        data = _batch(task, max(2, _num_classes(cfg.model.to_dict())))
        losses = model(**model.data_preprocessor(data, training=True), mode='loss')
        loss, log = model.parse_losses(losses)
        if not all(math.isfinite(float(v)) for v in log.values()):
            raise AssertionError(f'non-finite loss {log}')
        loss.backward()
        grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
        grad = sum(float(g.abs().sum()) for g in grads)
        if not grads or not math.isfinite(grad) or grad == 0:
            raise AssertionError('no finite gradient reached the backbone')
        model.eval()
        with torch.no_grad():
            results = model(**model.data_preprocessor(data, training=False), mode='predict')
        if len(results) != 2:
            raise AssertionError(f'{len(results)} predictions for 2 images')
    return f'loss {float(loss):.3g}, backbone |grad| {grad:.3g}'


def walk_one(source: str, folder: Path, check_source: bool = True) -> tuple[str, str]:
    """``(result, detail)``: 'source fails' (excluded: the unswapped config does not train here), 'refused'
    (one line, nothing written), 'ok', or 'FAIL'. Without ``check_source`` the unswapped config is not
    trained first (the default suite's sample: its sources are known to train here, but for the refusal's
    ResNet with DCN, which needs larger images)."""
    from mmengine.config import Config
    from pvt_det.config.loading import load_config
    from pvt_det.config.swap import resolve_source
    from pvt_det.tools.swap_backbone import parse_args, write_swap
    out = folder / (re.sub(r'\W+', '_', source.split('::')[-1][:-3]) + '_pvt_v2_b0.py')
    try:
        printed = write_swap(parse_args([source, 'pvt_v2_b0', '--out', str(out), '--pretrained', 'none']))
    except ToolError as error:
        message = str(error)
        assert '\n' not in message and not out.exists()
        printed = None
    try:
        if check_source:
            train_one_step(load_config(resolve_source(source)))
    except Exception as error:  # noqa: BLE001 - excluded: the unswapped config does not train here
        return 'source fails', _one_line(error)
    if printed is None:
        return 'refused', message
    changed = ', '.join(line.split(' = ')[0].strip() for line in printed[1:] if ' = ' in line)
    try:
        account = train_one_step(Config.fromfile(str(out)))
    except Exception as error:  # noqa: BLE001
        return 'FAIL', f'{_one_line(error)} (changed: {changed})'
    return 'ok', f'{account}; changed: {changed}'


def _one_line(error: BaseException) -> str:
    text = ' '.join(str(error).split())
    return f'{type(error).__name__}: {text[:200]}'


def _selected() -> list[str]:
    return zoo_configs() if os.environ.get('PVT_DET_SWAP_ZOO') == 'all' else list(SAMPLE)


@pytest.mark.slow
@pytest.mark.parametrize('source', _selected())
def test_zoo_config_swaps_to_pvt_v2_b0(source, tmp_path):
    start = time.perf_counter()
    result, detail = walk_one(source, tmp_path, check_source=os.environ.get('PVT_DET_SWAP_ZOO') == 'all')
    table = os.environ.get('PVT_DET_SWAP_ZOO_TABLE')
    if table:
        with open(table, 'a', encoding='utf-8') as file:
            file.write(f'| {source} | {result} | {detail.replace("|", "/")} | '
                       f'{time.perf_counter() - start:.0f} s |\n')
    assert result != 'FAIL', detail
    if source in SAMPLE:  # the sample's expected outcomes: three swaps and one refusal
        expected = 'refused' if 'dconv' in source else 'ok'
        assert result == expected, detail


if __name__ == '__main__':  # python tests/test_swap_zoo.py SRC...: the walk of a few configs, printed
    parser = argparse.ArgumentParser()
    parser.add_argument('sources', nargs='*')
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        for name in parser.parse_args().sources or _selected():
            print(name, *walk_one(name, Path(folder)), sep=' | ', flush=True)
