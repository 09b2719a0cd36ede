"""Speed and peak memory of pvt_det's backbones and detectors against mmdet's and Hugging Face's
(pvt_det.tools.benchmark; how it measures: docs/benchmarks.md).

    python tools/benchmark.py backbone --arch pvt_v2_b2 --shape 800 1216 --reps 3
    python tools/benchmark.py detector --shape 800 1216 --reps 3
    python tools/benchmark.py scaling --arch pvt_small pvt_v2_b2 pvt_v2_b2_li --sizes 224 448 896 --out-dir out
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.tools.benchmark import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
