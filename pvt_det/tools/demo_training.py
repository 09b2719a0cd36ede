"""What every ``tools/demo.py`` task shares: its work dir, its generated demo config, and training it through
tools/train.py's code. A module of its own so that the task modules (demo_depth, demo_panoptic) and demo.py,
which dispatches to them, all import it and not each other."""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from pvt_det.cli import ToolError
from pvt_det.config.loading import shipped_config
from pvt_det.tools.train import train


def prepare_demo(work_dir: str | None, default_work_dir: str, config: str | None, default_config: str,
                 iters: int, write: Callable[[Path, Path, int], Path]) -> tuple[Path, Path]:
    """The set-up every demo shares: its work dir (made), its base config (checked) and the demo config that
    ``write(work_dir, base, iters)`` generates there with its dataset; returns the work dir and that config."""
    work = Path(work_dir or default_work_dir).resolve()
    base = Path(config or shipped_config(default_config)).resolve()
    if not base.is_file():
        raise ToolError(f'config not found: {base}')
    work.mkdir(parents=True, exist_ok=True)
    demo_config = write(work, base, iters)
    print(f'dataset: {work / "data"}, config: {demo_config}; training {iters} iterations')
    return work, demo_config


def train_demo(config: Path, work_dir: Path) -> tuple[dict, float]:
    """Train (and evaluate) a demo config through tools/train.py's code; returns the metrics and the minutes."""
    start = time.time()
    metrics = train(argparse.Namespace(
        config=str(config), work_dir=str(work_dir), amp=False, auto_scale_lr=False, resume=None,
        cfg_options=None, launcher='none'))
    return metrics, (time.time() - start) / 60
