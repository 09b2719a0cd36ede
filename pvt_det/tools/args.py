"""mmdet's common command-line flags, shared by tools/train.py and tools/test.py."""
from __future__ import annotations

import argparse
import os

from mmengine.config import DictAction


def parse_with_common_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with mmdet's common flags added to ``parser`` (``--work-dir``, ``--cfg-options``,
    ``--launcher``, ``--local_rank``); exports ``LOCAL_RANK`` for launchers that pass only the flag."""
    _add_common_args(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config values, e.g. train_dataloader.batch_size=4 '
                        'model.backbone.init_cfg=None; lists as key="[a,b]" (no spaces)')


def _add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='directory for logs, checkpoints and metrics '
                        '(default: work_dirs/<config name>)')
    add_cfg_options(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (tools/dist_*.sh pass pytorch)')
    # torch.distributed.launch passes --local-rank (torch>=2) or --local_rank (older).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
