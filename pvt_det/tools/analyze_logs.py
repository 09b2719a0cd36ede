"""Training curves of a work dir: loss, learning rate and the validation metric against the iteration, one PNG.

    python tools/analyze_logs.py work_dirs/retinanet_pvt_v2_b0_fpn --out curves.png
    python tools/analyze_logs.py work_dirs/a work_dirs/b --metric coco/bbox_mAP --out compare.png

Reads what mmengine 0.10 writes, ``<work_dir>/<timestamp>/vis_data/scalars.json`` (the latest run; a
``scalars.json`` path is taken as is): one JSON object a line, training lines with ``lr`` and the losses at their
iteration (``step``), validation lines with the metrics. mmengine's ``LoggerHook`` gives those the epoch as
``step`` (``log_metric_by_epoch=True``, its default), which is 0 in an iteration-based loop; they are drawn at the
iteration of the training line before them, when validation ran.

mmdet ships ``tools/analysis_tools/analyze_logs.py`` for this, but it cannot be reused as it is: it imports
seaborn (not installed with mmdet), and it files every key without a ``/`` (mmseg's ``mIoU``, ``aAcc``, and the
validation lines' ``time``/``step``) under the training values, so a segmentation metric or an iteration-based
run's validation metric is misplaced.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pvt_det.cli import ToolError, cli_main

# Keys of the validation lines that are not metrics.
NOT_METRICS = {'step', 'time', 'data_time', 'epoch', 'iter', 'memory'}
# Preferred metrics, the first one present is drawn unless --metric names others.
DEFAULT_METRICS = ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU', 'accuracy/top1')


def scalars_file(path: str | Path) -> Path:
    """``path`` itself if it is a file, else the latest ``<path>/<timestamp>/vis_data/scalars.json``."""
    path = Path(path)
    if path.is_file():
        return path
    runs = sorted(path.glob('*/vis_data/scalars.json'))
    if not path.is_dir() or not runs:
        raise ToolError(f'no mmengine log in {path}: expected {path}/<timestamp>/vis_data/scalars.json '
                        '(a work dir that tools/train.py wrote) or a scalars.json file')
    return runs[-1]


def read_scalars(path: str | Path) -> dict[str, list[dict]]:
    """``{'train': [...], 'val': [...]}``: the lines of a scalars.json, the validation ones at an iteration."""
    train, val = [], []
    last_train_step = 0
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ToolError(f'{path} line {number} is not JSON ({e.msg}): is it an mmengine scalars.json?') from e
        if 'lr' in record:
            train.append(record)
            last_train_step = record.get('step', last_train_step)
        else:  # validation ran after the training line before it; its own step may be an epoch, or 0
            val.append(dict(record, step=max(record.get('step', 0), last_train_step)))
    return dict(train=train, val=val)


def metric_keys(val: list[dict], requested: list[str] | None) -> list[str]:
    present = list(dict.fromkeys(k for record in val for k in record
                                 if k not in NOT_METRICS and isinstance(record[k], (int, float))))
    if requested:
        missing = [k for k in requested if k not in present]
        if missing:
            raise ToolError(f'--metric {" ".join(missing)} not in the validation log; it has: '
                            f'{", ".join(present) or "no validation lines"}')
        return requested
    return [next((k for k in DEFAULT_METRICS if k in present), present[0])] if present else []


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r['step'], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [float(p[1]) for p in points]


def plot_logs(logs: dict[str, dict[str, list[dict]]], out: str | Path, metrics: list[str] | None = None) -> dict:
    """Loss (every ``loss*`` key), lr and the metrics against the iteration, one colour per log, one metric axis
    per scale (:func:`metric_scale`). Returns what was drawn: ``{panel: {label: (steps, values)}}``, and under
    ``metric_axis`` each metric's scale."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from pvt_det.fileio import atomic_output
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)  # one iteration axis
    drawn: dict[str, dict] = dict(loss={}, lr={}, metric={})
    styles: dict[str, dict] = {}
    for index, (name, log) in enumerate(logs.items()):
        colour = plt.get_cmap('tab10')(index % 10)
        prefix = f'{name}: ' if len(logs) > 1 else ''
        losses = [k for k in dict.fromkeys(k for r in log['train'] for k in r) if k.startswith('loss')]
        for style, key in zip(('-', '--', ':', '-.') * 4, losses):
            drawn['loss'][prefix + key] = series(log['train'], key)
            axes[0].plot(*drawn['loss'][prefix + key], style, color=colour, label=prefix + key, linewidth=1)
        drawn['lr'][prefix + 'lr'] = series(log['train'], 'lr')
        axes[1].plot(*drawn['lr'][prefix + 'lr'], color=colour, label=prefix + 'lr', linewidth=1)
        for style, key in zip(('-', '--', ':') * 4, metric_keys(log['val'], metrics)):
            drawn['metric'][prefix + key] = series(log['val'], key)
            styles[prefix + key] = dict(fmt=style, color=colour)
    drawn['metric_axis'] = _draw_metrics(axes[2], drawn['metric'], styles)
    for ax, title in zip(axes, ('training loss', 'learning rate', 'validation metric')):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('iteration')
        ax.grid(True, alpha=0.3)
    for ax in axes[:2]:
        if ax.lines:
            ax.legend(fontsize=7)
    if any(v for _, values in drawn['loss'].values() for v in values if v > 0):
        axes[0].set_yscale('log')
    fig.tight_layout()
    with atomic_output(out) as tmp_path:
        fig.savefig(tmp_path, dpi=90)
    plt.close(fig)
    return drawn


def metric_scale(values: list[float]) -> str:
    """``'0-1'`` for a fraction (mmdet's bbox_mAP, accuracy as a ratio), ``'0-100'`` for a percentage (mmseg's
    mIoU, mmpretrain's top-1): drawn on one axis, a 0.8 mAP would sit on the zero line of a 0-100 mIoU."""
    return '0-1' if all(-1e-9 <= value <= 1 + 1e-9 for value in values) else '0-100'


def _draw_metrics(ax, metrics: dict[str, tuple[list[int], list[float]]], styles: dict[str, dict]) -> dict[str, str]:
    """Each metric on the axis of its scale: the first scale on the left, the other on a right-hand axis.
    Returns ``{label: scale}``."""
    scales = {label: metric_scale(values) for label, (_steps, values) in metrics.items() if values}
    order = list(dict.fromkeys(scales.values()))
    axis_of = {order[0]: ax} if order else {}
    if len(order) > 1:
        axis_of[order[1]] = ax.twinx()
    for label, scale in scales.items():
        target = axis_of[scale]
        target.plot(*metrics[label], styles[label]['fmt'], marker='o', color=styles[label]['color'], label=label)
    for scale, target in axis_of.items():
        target.set_ylabel(f'metric ({scale})', fontsize=8)
        target.legend(fontsize=7, loc='upper left' if target is ax else 'lower right')
    return scales


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('logs', nargs='+', help='work dirs (their latest run) or scalars.json files')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--metric', nargs='+', help=f'validation metrics (default: the first of '
                        f'{", ".join(DEFAULT_METRICS)} present, else the first metric logged)')
    return parser.parse_args(argv)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs = {}
    for path in args.logs:
        scalars = scalars_file(path)
        log = read_scalars(scalars)
        if not log['train']:
            raise ToolError(f'{scalars} has no training lines (none with "lr"): nothing to plot')
        logs[Path(path).name or str(path)] = log
    drawn = plot_logs(logs, args.out, args.metric)
    for label, (steps, values) in {**drawn['loss'], **drawn['metric']}.items():
        if values:
            print(f'{label}: {values[0]:.4g} at iteration {steps[0]} -> {values[-1]:.4g} at iteration {steps[-1]} '
                  f'({len(values)} points)')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
