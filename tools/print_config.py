"""Print a config with every ``_base_`` merged in: what tools/train.py actually runs.

    python tools/print_config.py configs/retinanet_pvt_small_fpn.py [--cfg-options KEY=VALUE ...]

The code is pvt_det.tools.print_config, also installed as the console script pvt-det-print-config.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.print_config import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
