"""Rewrite a checkpoint into pvt_det's layout, or write one in another project's layout (--to).

    python tools/convert_weights.py SRC DST [--to {ours,official,mmdet,hf,timm}] [--arch pvt_v2_b2]
                                    [--backbone-only] [--overwrite]

See ``pvt_det/tools/convert_weights.py``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.convert_weights import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
