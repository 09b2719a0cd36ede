"""tools/benchmark.py scaling: time and memory against the input side, as CSV and a log-log PNG that agree with
the printed table."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from pvt_det.benchmark import scaling
from pvt_det.tools import benchmark as benchmark_tool


def test_scaling_writes_csv_and_png_matching_its_table(tmp_path, capsys):
    # In-process (--no-isolate): the worker processes are test_perf_tools' business, and cost a start each.
    out = tmp_path / 'scaling'
    assert benchmark_tool.main(['scaling', '--arch', 'pvt_v2_b0', '--sizes', '64', '96', '--impl', 'ours', 'mmdet',
                                '--reps', '1', '--warmup', '0', '--no-isolate', '--out-dir', str(out)]) == 0
    printed = capsys.readouterr().out
    table = [line.strip('|').split('|') for line in printed.splitlines()
             if line.startswith('| pvt_v2_b0') and len(line.split('|')) == 8]
    table = [[cell.strip() for cell in row] for row in table]
    with open(out / 'scaling.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [[r[k] for k in scaling.CSV_FIELDS] for r in rows] == table
    assert {(r['impl'], r['mode'], r['side']) for r in rows} == {(i, 'infer', s) for i in ('ours', 'mmdet')
                                                                for s in ('64', '96')}
    assert all(float(r['median_ms']) > 0 and float(r['peak_mib']) > 0 for r in rows)
    # The PNG holds what it drew: one line per implementation in each panel, the CSV's values.
    drawn = scaling.plotted_series(out / 'scaling.png')
    for panel, key in (('time', 'median_ms'), ('memory', 'peak_mib')):
        assert sorted(drawn[panel]) == ['pvt_v2_b0 mmdet infer', 'pvt_v2_b0 ours infer']
        for label, series in drawn[panel].items():
            impl = label.split(' ')[1]
            assert series['values'] == [float(r[key]) for r in rows if r['impl'] == impl]
            assert series['sides'] == [64, 96]
    # The drawn lines are there: pixels of the arch's colour (tab10 blue) in the PNG.
    from PIL import Image
    pixels = np.asarray(Image.open(out / 'scaling.png').convert('RGB')).astype(int)
    assert (np.abs(pixels - np.array([31, 119, 180])).sum(-1) < 30).sum() > 200
    # The slopes printed are the least-squares slopes of the CSV's values.
    for impl in ('ours', 'mmdet'):
        times = [float(r['median_ms']) for r in rows if r['impl'] == impl]
        slope = math.log(times[1] / times[0]) / math.log(96 / 64)
        assert f'| pvt_v2_b0 | {impl} | infer | {slope:.2f} |' in printed


def test_loglog_slope_recovers_powers():
    sides = [224, 448, 896]
    assert scaling.loglog_slope(sides, [3 * s ** 2 for s in sides]) == pytest.approx(2)
    assert scaling.loglog_slope(sides, [s ** 4 / 7 for s in sides]) == pytest.approx(4)


def test_scaling_needs_two_sizes(capsys, tmp_path):
    assert benchmark_tool.main(['scaling', '--arch', 'pvt_v2_b0', '--sizes', '64', '--out-dir', str(tmp_path)]) == 1
    assert 'give at least two different sides' in capsys.readouterr().err
