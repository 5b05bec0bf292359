"""Load a module of hetero_infer as it was at a git commit, to time old and new code in one run.

The machine the benches run on is shared and noisy, so a speed-up is only measured as a ratio
of runs taken side by side in one process. The old module's own imports resolve to the current
package (the twin and the evaluation only import stable pieces: model, platform, workload,
metrics). Used by ``bench_twin.py`` and ``bench_eval_twin.py`` (``--before REF``).
"""

import importlib.util
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The last commit before the twin's speed work (issue 11, item 8).
BEFORE_REF = '3411d71'


def load_at(ref: str, path: str, name: str):
    """The module at ``path`` (relative to the repository) as of commit ``ref``.

    :raises RuntimeError: git or the commit is not available (e.g. not a git checkout).
    """
    try:
        text = subprocess.run(['git', '-C', REPO, 'show', '%s:%s' % (ref, path)],
                              check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError('cannot read %s at %s: %s' % (path, ref, exc)) from None
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
