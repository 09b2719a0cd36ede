"""Rewrite a checkpoint into pvt_det's layout: a classifier or backbone file, or a whole detector/segmentor.

    python tools/convert_weights.py SRC DST [--arch pvt_v2_b2] [--backbone-only] [--overwrite]

See ``pvt_det/tools/convert_weights.py``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.convert_weights import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
