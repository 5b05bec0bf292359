"""TensorRT backend check on a machine with an NVIDIA GPU (run by tools/device_check.sh).

The check lives in :mod:`hetero_infer.bringup.device_check` (its ``environment`` is also step 1
of ``hetero-infer bringup``); this script runs it:

    python tools/device_check.py --out out/device_check.json [--iterations 200]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hetero_infer.bringup.device_check import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
