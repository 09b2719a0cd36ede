"""Every tool module runs three ways (issue 24): as a file (``python pvt_det/tools/<name>.py``, which is what
``mim train/test/run`` does with an installed package), as a module (``python -m pvt_det.tools.<name>``) and
as its console script (``pvt-det-<name>``). A relative import breaks the first: tests/test_mim.py runs mim."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = sorted(path.stem for path in (REPO / 'pvt_det' / 'tools').glob('*.py')
               if re.search(r'^def main\(', path.read_text(), re.M))

# One interpreter for all of them: each --help exits 0 after argparse printed the usage.
RUN_EVERY_WAY = r'''
import contextlib, io, runpy, sys
failures = []
for name in sys.argv[1:]:
    for how, run in (('file', lambda: runpy.run_path(f'pvt_det/tools/{name}.py', run_name='__main__')),
                     ('module', lambda: runpy.run_module(f'pvt_det.tools.{name}', run_name='__main__',
                                                         alter_sys=True))):
        sys.argv = [name, '--help']
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                run()
            status = 0
        except SystemExit as stop:
            status = stop.code
        except Exception as error:  # noqa: BLE001
            status = f'{type(error).__name__}: {error}'
        if status != 0 or 'usage:' not in out.getvalue():
            failures.append(f'{name} as a {how}: {status}')
print('FAILURES:', failures)
'''


def test_tools_are_found():
    assert {'train', 'test', 'print_config', 'export_onnx', 'analyze_logs', 'demo', 'infer'} <= set(TOOLS)


@pytest.mark.slow
def test_every_tool_runs_as_a_file_and_as_a_module():
    found = subprocess.run([sys.executable, '-c', RUN_EVERY_WAY, *TOOLS], cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    assert found.returncode == 0, found.stderr[-3000:]
    assert found.stdout.strip().splitlines()[-1] == 'FAILURES: []', found.stdout[-3000:] + found.stderr[-2000:]


def test_tool_modules_use_absolute_imports():
    """A relative import needs a parent package, which a module run as a file does not have."""
    relative = [f'{path.name}: {line.strip()}' for path in sorted((REPO / 'pvt_det' / 'tools').glob('*.py'))
                for line in path.read_text().splitlines() if re.match(r'\s*from \.', line)]
    assert not relative, relative


@pytest.mark.slow
def test_console_script_and_plain_file_in_their_own_process(tmp_path):
    """The installed console script and the file as mim runs it (its folder first on sys.path)."""
    script = Path(sys.executable).parent / 'pvt-det-print-config'
    assert script.is_file(), 'the console scripts come with `make setup` (pip install -e .)'
    by_script = subprocess.run([str(script), '--help'], cwd=tmp_path, capture_output=True, text=True,
                               timeout=300)
    as_file = subprocess.run([sys.executable, str(REPO / 'pvt_det' / 'tools' / 'print_config.py'), '--help'],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert by_script.returncode == 0 and as_file.returncode == 0, by_script.stderr[-2000:] + as_file.stderr[-2000:]
    # The same parser: only the usage paragraph names the program differently.
    assert by_script.stdout.split('\n\n', 1)[1] == as_file.stdout.split('\n\n', 1)[1]
    assert '--cfg-options' in by_script.stdout
