"""Load a module of hetero_infer as it was at a git commit, to time old and new code in one run.

The machine the benches run on is shared and noisy, so a speed-up is only measured as a ratio
of runs taken side by side in one process. The old module's own imports resolve to the current
package (the twin and the evaluation only import stable pieces: model, platform, workload,
metrics). Used by ``bench_twin.py`` and ``bench_eval_twin.py`` (``--before REF``).

Commits before the structure issue kept these modules in the flat ``hetero_infer/core/``: a path
that does not exist at ``ref`` is read from its former place (``FORMER``), and while the old
module runs, its ``hetero_infer.core.*`` imports resolve to the modules' present places.
"""

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import types

#: Former module (``hetero_infer.core.<name>``) -> its present place.
FORMER = {
    'json_file': 'io.json_file', 'yaml_file': 'io.yaml_file', 'schema': 'io.schema',
    'layers': 'models.layers', 'dla_rules': 'models.dla_rules',
    'onnx_import': 'models.onnx_import', 'model': 'models.zoo', 'platform': 'platform.spec',
    'workload': 'workload.requests', 'faults': 'twin.faults', 'fault_sim': 'twin.fault_sim',
    'twin': 'twin.simulator', 'twin_kernel': 'twin.kernel', 'features': 'interference.features',
    'random_layers': 'interference.random_layers', 'profiling': 'interference.profiling',
    'regressor_models': 'interference.regressor_models',
    'regressors': 'interference.regressor_comparison',
    'model_selection': 'interference.regressor_selection',
    'interference': 'interference.slowdown_model', 'predictors': 'interference.predictors',
    'policy': 'planning.policy', 'router': 'planning.router', 'plansim': 'planning.plansim',
    'metrics': 'planning.metrics', 'search': 'planning.search', 'goals': 'planning.goals',
    'schedulers': 'planning.schedulers', 'twin_measure': 'planning.twin_measure',
    'evaluation': 'evaluation.runner', 'eval_report': 'evaluation.report',
    'eval_stats': 'evaluation.statistics', 'jobs': 'evaluation.jobs',
    'scenarios': 'evaluation.scenarios', 'calibration': 'evaluation.calibration',
}


def _former_path(path: str) -> str:
    module = path[:-3].replace('/', '.')
    for old, new in FORMER.items():
        if module == 'hetero_infer.' + new:
            return 'hetero_infer/core/%s.py' % old
    return path


def _alias_former_modules() -> None:
    """Make ``hetero_infer.core.<name>`` importable as the module's present place."""
    if 'hetero_infer.core' in sys.modules:
        return
    core = types.ModuleType('hetero_infer.core')
    core.__path__ = []
    sys.modules['hetero_infer.core'] = core
    for old, new in FORMER.items():
        module = importlib.import_module('hetero_infer.' + new)
        sys.modules['hetero_infer.core.' + old] = module
        setattr(core, old, module)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The last commit before the twin's speed work (issue 11, item 8).
BEFORE_REF = '3411d71'


def load_at(ref: str, path: str, name: str):
    """The module at ``path`` (relative to the repository) as of commit ``ref``.

    :raises RuntimeError: git or the commit is not available (e.g. not a git checkout).
    """
    text = None
    for where in (path, _former_path(path)):
        try:
            text = subprocess.run(['git', '-C', REPO, 'show', '%s:%s' % (ref, where)],
                                  check=True, capture_output=True, text=True).stdout
            break
        except (OSError, subprocess.CalledProcessError) as exc:
            error = exc
    if text is None:
        raise RuntimeError('cannot read %s at %s: %s' % (path, ref, error)) from None
    if 'hetero_infer.core' in text:
        _alias_former_modules()
    tmp = tempfile.NamedTemporaryFile('w', suffix='.py', prefix=name + '_', delete=False)
    with tmp:
        tmp.write(text)
    try:
        spec = importlib.util.spec_from_file_location(name, tmp.name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        os.unlink(tmp.name)
    return module
