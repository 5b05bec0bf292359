"""A bring-up directory's artifacts: written whole or not at all, and found again on a re-run.

Every file is written under a temporary name beside its final one and renamed into place
(``os.replace``), and every directory is filled as ``.NAME.partial`` and renamed: a step killed
half-way leaves no artifact that looks complete, so a re-run redoes that step and skips the
finished ones. ``bringup.json`` records the settings the directory was made with; a re-run with
other settings is refused (its artifacts would mix two bring-ups).
"""

import json
import os
import shutil
from typing import Any, Callable, Dict, Mapping

from hetero_infer.errors import ConfigError

SETTINGS_FILE = 'bringup.json'


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path``."""
    tmp = '%s.tmp-%d' % (path, os.getpid())
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str, doc: Any) -> None:
    """``doc`` as indented JSON at ``path``, atomically."""
    def write(tmp: str) -> None:
        with open(tmp, 'w') as f:
            json.dump(doc, f, indent=1, default=_plain)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
    write_atomic(path, write)


def write_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, 'w') as f:
            f.write(text)
    write_atomic(path, write)


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def fill_directory(path: str, fill: Callable[[str], None]) -> None:
    """Call ``fill(partial_dir)`` on an empty ``.NAME.partial`` beside ``path`` and rename it to
    ``path`` (a partial directory a killed run left behind is discarded first)."""
    partial = os.path.join(os.path.dirname(path), '.%s.partial' % os.path.basename(path))
    if os.path.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    fill(partial)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(partial, path)


def check_settings(out_dir: str, settings: Mapping[str, Any]) -> Dict[str, Any]:
    """Record ``settings`` in a new bring-up directory, or check a re-run asks for the same.

    :raises ConfigError: ``out_dir`` holds a bring-up made with other settings (the message
        names each differing setting with both values).
    """
    path = os.path.join(out_dir, SETTINGS_FILE)
    want = json.loads(json.dumps(dict(settings)))
    if os.path.exists(path):
        have = read_json(path)
        diff = ['%s: %r in %s, %r now' % (k, have.get(k), path, want.get(k))
                for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
        if diff:
            raise ConfigError('%s was brought up with other settings (%s); use another --out '
                              'or the same settings' % (out_dir, '; '.join(diff)))
        return have
    write_json(path, want)
    return want


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    import numpy as np
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError('not JSON serialisable: %r' % (value,))
