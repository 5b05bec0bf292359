"""Helpers shared by the twin's tests (test_core_twin*.py)."""

import copy
import os

from hetero_infer.io.yaml_file import read_yaml
from hetero_infer.platform.spec import PLATFORM_DIR, Platform
from hetero_infer.workload.requests import Dispatcher


class Spread(Dispatcher):
    """Round-robin over processors, dropping every 7th request (exercises the drop path); checks
    the view it is given is the twin's at the request's arrival."""

    def reset(self, apps, platform):
        self.n = 0
        self.procs = platform.processor_ids

    def dispatch(self, app_index, now_ms, view):
        self.n += 1
        if self.n % 7 == 0:
            return None
        assert view.now_ms == now_ms
        assert view.expected_free_ms(self.procs[0]) >= now_ms
        return self.procs[self.n % len(self.procs)]


def three_dla_platform() -> Platform:
    """Xavier with a third DLA: four inferences run at once (Xavier serving solves at most
    three), so the twin's general solve is exercised as well as its unrolled ones."""
    doc = read_yaml(os.path.join(PLATFORM_DIR, 'xavier.yaml'), 'platform')
    doc['processors']['dla2'] = copy.deepcopy(doc['processors']['dla0'])
    return Platform.from_dict(doc)
