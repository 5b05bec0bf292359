"""Fit a platform's per-kind efficiencies and per-layer overheads to measured model latencies.

The code lives in :mod:`hetero_infer.evaluation.platform_fit` (``hetero-infer bringup`` fits a
board's own latencies with it); this script runs its FACTS and contention fits:

    python tools/fit_platform.py --platform xavier
    python tools/fit_platform.py --platform xavier --contention
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hetero_infer.evaluation.platform_fit import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
