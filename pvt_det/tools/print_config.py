"""Print a config with every ``_base_`` merged in: what tools/train.py actually runs.

    python tools/print_config.py configs/retinanet_pvt_small_fpn.py [--cfg-options KEY=VALUE ...]

The parse-time variables of the files (``pvt_small_backbone``, ``train_pipeline``, ...) are left out, and
a setting that cannot take effect is named on stderr (pvt_det.config.unused_keys). Diffing two printed
configs shows exactly what a leaf config changes, e.g. the ResNet -> PVT swap (docs/swap_resnet.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pvt_det.cli import ToolError, cli_main
from pvt_det.config.unused_keys import ineffective_settings, parse_time_variables


def resolved_config_text(path: str, cfg_options: dict | None = None) -> str:
    """The merged config as Python source (mmengine's ``Config.pretty_text``), without the variables that
    were read only while the files were parsed (``pvt_small_backbone``, ``train_pipeline``, ...): their
    values are in the keys that used them, and nothing reads them at run time."""
    from mmengine.config import Config  # pvt_det, imported above, makes `_base_ = 'mmdet::...'` work
    if not Path(path).is_file():
        raise ToolError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for finding in ineffective_settings(path, cfg, cfg_options):
        print(f'note: {finding.message()}', file=sys.stderr)
    variables = parse_time_variables(path)
    return Config({key: value for key, value in cfg.to_dict().items() if key not in variables},
                  filename=path).pretty_text


@cli_main
def main(argv: list[str] | None = None) -> int:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file, e.g. configs/retinanet_pvt_small_fpn.py')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config values before printing')
    args = parser.parse_args(argv)
    print(resolved_config_text(args.config, args.cfg_options))
    return 0


if __name__ == '__main__':
    sys.exit(main())
