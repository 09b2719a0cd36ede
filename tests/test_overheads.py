"""Two mmengine overheads that pvt_det removes without changing any result: the 2 s pause at each restart
of an iteration-based run's data loader, and the re-reading of a whole zoo's metafiles for each
``mmdet::``/``mmseg::`` base a config names (0.6-0.8 s each time a Mask R-CNN user config is read)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from torch.utils.data import DataLoader

import pvt_det  # noqa: F401  (applies pvt_det.compat)


def _small_loader() -> DataLoader:
    from mmengine.dataset import DefaultSampler
    data = list(range(5))  # 3 batches of 2: the loader ends every 3 iterations
    return DataLoader(data, batch_size=2, sampler=DefaultSampler(data, shuffle=True, seed=3), collate_fn=list)


def test_iteration_loop_restarts_a_loader_without_workers_without_pausing(monkeypatch):
    from mmengine.runner import loops as mmengine_loops
    from pvt_det.engine.loops import ResumableIterBasedTrainLoop
    pauses: list[float] = []
    monkeypatch.setattr(mmengine_loops.time, 'sleep', pauses.append)  # recorded, not slept
    theirs = mmengine_loops._InfiniteDataloaderIterator(_small_loader())
    expected = [next(theirs) for _ in range(9)]
    assert pauses == [2, 2]  # mmengine: a 2 s pause at each of the two restarts

    pauses.clear()
    loop = ResumableIterBasedTrainLoop(SimpleNamespace(), _small_loader(), max_iters=9)
    ours = [next(loop.dataloader_iterator) for _ in range(9)]
    # The same batches in the same order (each pass reshuffled by its epoch, as mmengine does), no pause.
    assert ours == expected and pauses == []
    assert sorted(sum(ours[3:6], [])[:5]) == list(range(5)) and ours[:3] != ours[3:6]


def test_a_zoo_config_lookup_reads_the_metafiles_once(monkeypatch, tmp_path):
    import mmengine.fileio
    from mmengine.config import Config
    from mmengine.config import utils as config_utils
    from mmengine.utils import get_installed_path
    from pvt_det import compat
    mmdet = get_installed_path('mmdet')
    # mmengine's own lookup and ours give the same answers: a model config's metafile entry, and for a
    # base file (no metafile names it) a ValueError, after which mmengine looks in .mim/configs.
    for name in ('retinanet/retinanet_r50_fpn_1x_coco.py', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'):
        assert config_utils._get_cfg_metainfo(mmdet, name) == compat._uncached_cfg_metainfo(mmdet, name)
    # (mmengine 0.10 asks without the '.py', which no entry matches: every lookup ends in .mim/configs.)
    for lookup in (config_utils._get_cfg_metainfo, compat._uncached_cfg_metainfo):
        for name in ('_base_/models/retinanet_r50_fpn', 'retinanet/retinanet_r50_fpn_1x_coco'):
            with pytest.raises(ValueError):
                lookup(mmdet, name)

    reads: list[str] = []
    load = mmengine.fileio.load
    monkeypatch.setattr(mmengine.fileio, 'load', lambda path, *a, **k: reads.append(path) or load(path, *a, **k))
    monkeypatch.setattr(compat, '_METAFILE_CONFIGS', {})
    for name in ('retinanet_r50_fpn_1x_coco', 'retinanet_r50_fpn_2x_coco'):
        (tmp_path / f'{name}.py').write_text(f"_base_ = 'mmdet::retinanet/{name}.py'\n")
    cfg = Config.fromfile(str(tmp_path / 'retinanet_r50_fpn_1x_coco.py'))
    first = len(reads)
    assert cfg.model.type == 'RetinaNet' and first > 50  # mmdet's model index and its metafiles, once
    assert Config.fromfile(str(tmp_path / 'retinanet_r50_fpn_2x_coco.py')).train_cfg.max_epochs == 24
    assert len(reads) == first  # the second config's lookup read nothing again
