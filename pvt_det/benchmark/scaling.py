"""How time and peak memory grow with the input side: the backbone benchmark over a range of square sizes.

Every (arch, side) point is one backbone comparison as ``benchmark.py backbone`` runs it (same weights, each
implementation in worker processes of its own); the points are written as ``scaling.csv`` and drawn as
``scaling.png`` (log-log), with the least-squares slope of log(time) and log(memory) against log(side) per
curve. A slope of 2 is linear in the number of tokens, 4 quadratic.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from pvt_det.fileio import atomic_output

from .archs import BenchmarkError, check_arch

CSV_FIELDS = ('arch', 'impl', 'mode', 'side', 'median_ms', 'peak_mib')
# The PNG carries the plotted series as JSON under this key, so what was drawn can be read back and checked.
PNG_DATA_KEY = 'pvt_det.scaling'


def scaling_rows(archs: Sequence[str], sizes: Sequence[int],
                 run_point: Callable[[str, int], dict]) -> list[dict]:
    """One row per (arch, impl, mode, side) from ``run_point(arch, side)``, a backbone benchmark's results."""
    for arch in archs:
        check_arch(arch)
    if len(set(sizes)) < 2:
        raise BenchmarkError(f'--sizes {" ".join(map(str, sizes))}: give at least two different sides to fit a slope')
    rows = []
    for arch in archs:
        for side in sorted(set(sizes)):
            results = run_point(arch, side)
            for row in results['rows']:
                peak = row.get('peak_mib')
                rows.append(dict(arch=arch, impl=row['impl'], mode=row['mode'], side=side,
                                 median_ms=f"{row['median_s'] * 1e3:.1f}",
                                 peak_mib='' if peak is None else f'{peak:.1f}'))
    return rows


def curves(rows: list[dict], value: str) -> dict[str, tuple[list[int], list[float]]]:
    """``{'arch impl mode': (sides, values)}`` for ``value`` (``median_ms`` or ``peak_mib``), rows with one."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for row in rows:
        if row[value] == '':
            continue
        sides, values = out.setdefault(f"{row['arch']} {row['impl']} {row['mode']}", ([], []))
        sides.append(int(row['side']))
        values.append(float(row[value]))
    return out


def loglog_slope(sides: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) against log(side)."""
    xs, ys = [math.log(s) for s in sides], [math.log(max(v, 1e-12)) for v in values]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var if var else float('nan')


def slopes(rows: list[dict]) -> dict[str, dict[str, float]]:
    """``{'arch impl mode': {'time': slope, 'memory': slope}}``."""
    out: dict[str, dict[str, float]] = {}
    for value, name in (('median_ms', 'time'), ('peak_mib', 'memory')):
        for label, (sides, values) in curves(rows, value).items():
            if len(set(sides)) > 1:
                out.setdefault(label, {})[name] = loglog_slope(sides, values)
    return out


def write_csv(rows: list[dict], path: str | os.PathLike) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def print_scaling(rows: list[dict], fitted: dict[str, dict[str, float]], machine: str) -> None:
    print(f'# scaling: time and peak memory vs input side (square inputs, batch 1); {machine}')
    print('| arch | impl | mode | side | median ms | peak MiB |')
    print('|---|---|---|---|---|---|')
    for row in rows:
        print(f"| {row['arch']} | {row['impl']} | {row['mode']} | {row['side']} | {row['median_ms']} | "
              f"{row['peak_mib']} |")
    print()
    print('| arch | impl | mode | time slope | memory slope |')
    print('|---|---|---|---|---|')
    for label, fit in fitted.items():
        time_slope, memory_slope = (f'{fit[k]:.2f}' if k in fit else '' for k in ('time', 'memory'))
        print(f"| {' | '.join(label.split(' '))} | {time_slope} | {memory_slope} |")


def plot_scaling(rows: list[dict], path: str | os.PathLike, title: str = '') -> None:
    """Time and peak memory against the side, log-log, one line per arch/impl/mode, slopes in the legend."""
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt
    fitted = slopes(rows)
    archs = list(dict.fromkeys(row['arch'] for row in rows))
    colors = {arch: plt.get_cmap('tab10')(i % 10) for i, arch in enumerate(archs)}
    styles = {'ours': '-', 'mmdet': '--', 'hf': ':'}
    markers = {'infer': 'o', 'train': 's'}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    drawn = {}
    for ax, value, name, unit in ((axes[0], 'median_ms', 'time', 'median time (ms)'),
                                  (axes[1], 'peak_mib', 'memory', 'peak memory (MiB)')):
        drawn[name] = {}
        for label, (sides, values) in curves(rows, value).items():
            arch, impl, mode = label.split(' ')
            slope = fitted.get(label, {}).get(name)
            legend = label + (f' (slope {slope:.2f})' if slope is not None else '')
            ax.plot(sides, values, styles.get(impl, '-.'), marker=markers.get(mode, 'x'), color=colors[arch],
                    label=legend)
            drawn[name][label] = dict(sides=sides, values=values)
        ax.set_xscale('log')
        ax.set_yscale('log')
        sides = sorted({int(row['side']) for row in rows})
        ax.set_xticks(sides, [str(s) for s in sides])
        ax.minorticks_off()
        ax.set_xlabel('input side (pixels, square image)')
        ax.set_ylabel(unit)
        ax.grid(True, which='major', alpha=0.3)
        if drawn[name]:
            ax.legend(fontsize=7)
    fig.suptitle(title or 'backbone cost vs input side (log-log; slope 2 = linear in tokens, 4 = quadratic)',
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={PNG_DATA_KEY: json.dumps(drawn)})
    plt.close(fig)


def plotted_series(path: str | os.PathLike) -> dict:
    """What :func:`plot_scaling` drew into the PNG at ``path``: ``{'time'|'memory': {label: {sides, values}}}``."""
    from PIL import Image
    with Image.open(path) as image:
        return json.loads(image.text[PNG_DATA_KEY])


def write_outputs(rows: list[dict], out_dir: str | os.PathLike, title: str = '') -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / 'scaling.csv', out / 'scaling.png'
    with atomic_output(csv_path) as tmp_path:
        write_csv(rows, tmp_path)
    with atomic_output(png_path) as tmp_path:
        plot_scaling(rows, tmp_path, title)
    return csv_path, png_path
