"""The metadata is in setup.cfg; this build step adds the package data OpenMMLab's tools look for.

An installed pvt_det carries, under ``pvt_det/.mim/`` (where mmdet keeps its zoo):

* ``configs/configs/``: the repository's ``configs/`` tree as it is. mmengine resolves
  ``_base_ = 'pvt_det::<path>'`` to ``<package>/.mim/configs/<path>`` and needs a folder in ``<path>``, so
  ``pvt_det::configs/<file>.py`` names the same file as ``configs/<file>.py`` in a checkout, and the relative
  ``_base_`` paths inside the configs still resolve;
* ``tools/<name>.py``: the repository's shims of ``pvt_det.tools.<name>``, which ``mim train/test/run``
  execute;
* ``model-index.yml``: mmengine reads it before resolving a ``pvt_det::`` path, and fails without one.

A regular build (wheel, sdist) copies them into the build tree. An editable install links them to the
checkout instead (``pvt_det/.mim/`` is ignored by git), so edits to ``configs/`` take effect at once.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MIM = Path('pvt_det', '.mim')
MODEL_INDEX = """\
# pvt_det publishes no trained detectors or segmentors to index. mmengine (and mim) read this file
# before resolving `_base_ = 'pvt_det::configs/<file>.py'` to .mim/configs/configs/<file>.py.
Import: []
"""


def mim_sources() -> dict[Path, Path]:
    """What goes under ``pvt_det/.mim/``: its path there -> the file or folder of the source tree."""
    configs, tools = ROOT / 'configs', ROOT / 'tools'
    if not configs.is_dir() or not tools.is_dir():
        # A wheel without its configs would install fine and fail at the first `pvt_det::` base.
        raise FileNotFoundError(f'configs/ and tools/ must be next to setup.py in {ROOT} (see MANIFEST.in)')
    shims = {Path('tools', script.name): script for script in sorted(tools.glob('*.py'))
             if (ROOT / 'pvt_det' / 'tools' / script.name).is_file()}
    return {Path('configs', 'configs'): configs, **shims}


class BuildPyWithMim(build_py):
    """``build_py`` that also writes ``pvt_det/.mim/`` (copies in a build, links in an editable install)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            self._link_into_checkout()
        else:
            self._copy_into_build_tree()

    def _copy_into_build_tree(self) -> None:
        target = Path(self.build_lib) / MIM
        shutil.rmtree(target, ignore_errors=True)  # a configs/ file deleted since the last build goes too
        for dest, source in mim_sources().items():
            (target / dest).parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target / dest, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            else:
                shutil.copy2(source, target / dest)
        (target / 'model-index.yml').write_text(MODEL_INDEX)

    def _link_into_checkout(self) -> None:
        target = ROOT / MIM
        shutil.rmtree(target, ignore_errors=True)
        for dest, source in mim_sources().items():
            (target / dest).parent.mkdir(parents=True, exist_ok=True)
            (target / dest).symlink_to(os.path.relpath(source, (target / dest).parent))
        (target / 'model-index.yml').write_text(MODEL_INDEX)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        target = Path(self.build_lib) / MIM
        return outputs + [str(path) for path in sorted(target.rglob('*')) if path.is_file()]


if __name__ == '__main__':  # setuptools runs setup.py as __main__; the tests import it for mim_sources()
    setup(cmdclass={'build_py': BuildPyWithMim})
