"""`make test` runs the suite on both cores (issue 24): pytest-xdist is a test extra, the Makefile starts two
workers, and each worker's torch gets its share of the threads, not both cores each."""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_make_test_runs_two_workers_of_an_installed_xdist():
    makefile = (REPO / 'Makefile').read_text()
    recipe = re.search(r'^test:\n\t(.*)$', makefile, re.M)[1]
    assert '-m pytest' in recipe and '-n $(PYTEST_WORKERS)' in recipe, recipe
    assert re.search(r'^PYTEST_WORKERS \?= 2$', makefile, re.M)
    parser = configparser.ConfigParser()
    parser.read(REPO / 'setup.cfg')
    extras = [line.split('#')[0].strip() for line in parser['options.extras_require']['tests'].splitlines()]
    assert 'pytest-xdist' in extras
    import xdist  # noqa: F401  (installed by `make setup`: pip install -e ".[tests]")


def test_each_worker_gets_its_share_of_the_cores():
    probe = ('import sys; sys.path.insert(0, "tests"); import conftest, torch; '
             'print(conftest.WORKERS, torch.get_num_threads())')
    cores = min(2, os.cpu_count() or 1)
    for workers, expected in (('1', cores), ('2', max(1, cores // 2))):
        found = subprocess.run([sys.executable, '-c', probe], cwd=REPO, capture_output=True, text=True,
                               env=dict(os.environ, PYTEST_XDIST_WORKER_COUNT=workers), timeout=120)
        assert found.returncode == 0, found.stderr[-2000:]
        assert found.stdout.split() == [workers, str(expected)], found.stdout
