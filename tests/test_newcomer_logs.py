"""tools/analyze_logs.py draws each validation metric on an axis of its own scale (issue 24): compared on one
axis, mmseg's mIoU (0-100) flattened mmdet's bbox mAP (0-1) onto the zero line."""
from __future__ import annotations

import json
from pathlib import Path

from pvt_det.tools import analyze_logs


def _scalars(path: Path, metric: str, values: list[float]) -> Path:
    """A scalars.json as mmengine writes it: training lines (lr, loss, step), a validation line after each."""
    lines = []
    for index, value in enumerate(values, 1):
        lines.append(dict(lr=1e-4, loss=2.0 / index, step=10 * index))
        lines.append({metric: value, 'step': index})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(map(json.dumps, lines)) + '\n')
    return path


def test_a_fraction_and_a_percentage_get_an_axis_each(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    figures = []
    monkeypatch.setattr(plt, 'close', figures.append)  # keep the figure to look at its axes
    run = Path('20261207_000000', 'vis_data', 'scalars.json')  # <work_dir>/<timestamp>/vis_data/
    _scalars(tmp_path / 'det' / run, 'coco/bbox_mAP', [0.41, 0.839])
    _scalars(tmp_path / 'seg' / run, 'mIoU', [55.0, 90.62])
    assert analyze_logs.main([str(tmp_path / 'det'), str(tmp_path / 'seg'), '--out', str(tmp_path / 'curves.png')]) == 0
    assert (tmp_path / 'curves.png').stat().st_size > 0
    figure, = figures
    axis_of = {line.get_label(): ax for ax in figure.axes for line in ax.lines}
    holders = {'coco/bbox_mAP': axis_of['det: coco/bbox_mAP'], 'mIoU': axis_of['seg: mIoU']}
    assert holders['coco/bbox_mAP'] is not holders['mIoU']
    # The mAP axis spans its values: 0.839 is near the top, not on the zero line of a 0-100 axis.
    low, high = holders['coco/bbox_mAP'].get_ylim()
    assert high < 1.5 and (0.839 - low) / (high - low) > 0.5
    assert holders['mIoU'].get_ylim()[1] > 90
    assert holders['mIoU'].get_ylabel() == 'metric (0-100)'
    assert holders['coco/bbox_mAP'].get_ylabel() == 'metric (0-1)'


def test_metrics_of_one_scale_share_an_axis(tmp_path):
    drawn = analyze_logs.plot_logs(
        {'a': analyze_logs.read_scalars(_scalars(tmp_path / 'a.json', 'coco/bbox_mAP', [0.2, 0.3])),
         'b': analyze_logs.read_scalars(_scalars(tmp_path / 'b.json', 'coco/bbox_mAP', [0.25, 0.5]))},
        tmp_path / 'out.png')
    assert drawn['metric_axis'] == {'a: coco/bbox_mAP': '0-1', 'b: coco/bbox_mAP': '0-1'}
