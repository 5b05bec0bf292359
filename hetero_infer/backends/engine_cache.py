"""On-disk cache of built engines, keyed by what makes an engine valid. No TensorRT needed here.

An engine is valid only for the exact model bytes, processor (``gpu`` or ``dlaN``), precision,
build options (GPU fallback, INT8 calibration cache, workspace) and TensorRT version it was built
with. :class:`EngineKey` holds those; its :meth:`~EngineKey.digest` names the file, and a JSON
sidecar (``<engine>.json``) beside each engine records the key fields, the engine's SHA-256 and
size, and build facts (which layers fell back to the GPU, build time). On lookup:

- no engine or no sidecar -> ``'missing'`` (build);
- sidecar key differs from the wanted key (e.g. an explicit ``engine_file_path`` reused after
  the model changed) -> ``'stale'`` (rebuild);
- engine bytes' checksum or size differ from the sidecar, or the sidecar is unreadable ->
  ``'corrupt'`` (rebuild; the bad file is never deserialized);
- otherwise ``'hit'``; if deserialization still fails, :func:`get_or_build` treats the file as
  corrupt and rebuilds once.

``force_engine_update=True`` rebuilds whatever the cache holds (Isaac ROS's parameter). Writes
are atomic (temporary file + ``os.replace``; engine first, sidecar last), so a crash mid-write
leaves a file without a valid sidecar, which the next lookup rebuilds.
"""

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from hetero_infer.errors import BackendError, ModelError

SIDECAR_FORMAT = 'hetero_infer.engine/1'
PRECISIONS = ('fp32', 'fp16', 'int8')


def default_cache_dir() -> str:
    """``$HETERO_INFER_ENGINE_CACHE`` or ``~/.cache/hetero_infer/engines``."""
    env = os.environ.get('HETERO_INFER_ENGINE_CACHE')
    if env:
        return env
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'hetero_infer', 'engines')


def file_sha256(path: str) -> str:
    """SHA-256 hex digest of a file.

    :raises ModelError: the file is missing or unreadable (the path is named).
    """
    h = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
    except FileNotFoundError:
        raise ModelError('model file not found: %s' % path) from None
    except OSError as exc:
        raise ModelError('cannot read model file %s: %s' % (path, exc)) from None
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine's validity depends on."""

    model_sha256: str
    processor: str            # 'gpu', 'dla0', 'dla1', ...
    precision: str            # 'fp32', 'fp16', 'int8'
    trt_version: str
    gpu_fallback: bool = True
    calibration_sha256: str = ''   # INT8 calibration cache, '' if none
    workspace_mb: int = 0
    device_name: str = ''     # GPU name: an engine is specific to the GPU model it was built on

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BackendError('precision %r: choose one of %s'
                               % (self.precision, ', '.join(PRECISIONS)))

    def digest(self) -> str:
        """Short hex digest of all fields (stable across runs and Python versions)."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class CacheLookup:
    status: str                         # 'hit', 'missing', 'stale', 'corrupt'
    path: str
    engine: Optional[bytes] = None      # the engine bytes on a hit
    reason: str = ''
    sidecar: Optional[Dict[str, Any]] = None


def sidecar_path(engine_path: str) -> str:
    return engine_path + '.json'


def _atomic_write(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.tmp-', suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class EngineCache:
    """Engine files under ``cache_dir`` (default :func:`default_cache_dir`), one per key."""

    def __init__(self, cache_dir: Optional[str] = None) -> None:
        self.cache_dir = cache_dir or default_cache_dir()

    def path_for(self, key: EngineKey, model_name: str = 'model') -> str:
        safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in model_name) or 'model'
        return os.path.join(self.cache_dir, '%s-%s-%s-%s.engine'
                            % (safe, key.processor, key.precision, key.digest()))

    def lookup(self, key: EngineKey, path: str) -> CacheLookup:
        """Check the engine at ``path`` against ``key`` without deserializing it."""
        if os.path.isdir(path):
            return CacheLookup('corrupt', path, reason='%s is a directory' % path)
        if not os.path.isfile(path):
            return CacheLookup('missing', path, reason='no engine file')
        side = sidecar_path(path)
        if not os.path.isfile(side):
            return CacheLookup('corrupt', path, reason='no checksum sidecar %s' % side)
        try:
            with open(side) as f:
                meta = json.load(f)
            want_sha = str(meta['engine_sha256'])
            want_size = int(meta['engine_bytes'])
            stored_key = dict(meta['key'])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return CacheLookup('corrupt', path, reason='unreadable sidecar %s: %s' % (side, exc))
        if meta.get('format') != SIDECAR_FORMAT:
            return CacheLookup('stale', path, reason='sidecar format %r' % meta.get('format'))
        if stored_key != key.to_dict():
            diff = sorted(k for k in set(stored_key) | set(key.to_dict())
                          if stored_key.get(k) != key.to_dict().get(k))
            return CacheLookup('stale', path, reason='built for other %s' % ', '.join(diff),
                               sidecar=meta)
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as exc:
            return CacheLookup('corrupt', path, reason='unreadable engine: %s' % exc)
        if len(data) != want_size or bytes_sha256(data) != want_sha:
            return CacheLookup('corrupt', path,
                               reason='checksum mismatch (%d bytes, sidecar says %d)'
                               % (len(data), want_size), sidecar=meta)
        return CacheLookup('hit', path, engine=data, sidecar=meta)

    def store(self, key: EngineKey, path: str, engine: bytes,
              info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Write ``engine`` and its sidecar atomically; returns the sidecar dict."""
        meta = {'format': SIDECAR_FORMAT, 'key': key.to_dict(),
                'engine_sha256': bytes_sha256(engine), 'engine_bytes': len(engine),
                'created_unix_s': time.time(), 'info': dict(info or {})}
        side = sidecar_path(path)
        self.check_writable(path)
        try:
            if os.path.lexists(side):
                os.unlink(side)  # never leave an old sidecar vouching for new bytes mid-write
            _atomic_write(path, engine)
            _atomic_write(side, (json.dumps(meta, indent=1, sort_keys=True) + '\n').encode())
        except OSError as exc:
            raise BackendError('cannot write engine cache entry %s: %s'
                               % (path, exc.strerror or exc)) from None
        return meta

    def invalidate(self, path: str) -> None:
        """Remove the engine at ``path`` and its sidecar (files only: a directory in their
        place is the user's, never removed).

        :raises BackendError: an entry is a directory or cannot be removed (path named).
        """
        for p in (sidecar_path(path), path):
            if os.path.isdir(p):
                raise BackendError('engine cache entry %s is a directory, not an engine file; '
                                   'move it away or choose another --cache-dir' % p)
            try:
                if os.path.lexists(p):
                    os.unlink(p)
            except OSError as exc:
                raise BackendError('cannot remove stale engine cache entry %s: %s'
                                   % (p, exc.strerror or exc)) from None

    def check_writable(self, path: str) -> None:
        """Refuse, before a build, a cache where the engine at ``path`` could not be stored.

        :raises BackendError: names the directory or entry and why.
        """
        d = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as exc:
            raise BackendError('engine cache directory %s cannot be created: %s'
                               % (d, exc.strerror or exc)) from None
        if not os.path.isdir(d) or not os.access(d, os.W_OK | os.X_OK):
            raise BackendError('engine cache directory %s is not writable; choose another '
                               '--cache-dir (or $HETERO_INFER_ENGINE_CACHE)' % d)
        for p in (path, sidecar_path(path)):
            if os.path.isdir(p):
                raise BackendError('engine cache entry %s is a directory, not an engine file; '
                                   'move it away or choose another --cache-dir' % p)


@dataclass
class CacheOutcome:
    """What :func:`get_or_build` did."""

    engine: Any                   # the deserialized engine
    path: str
    status: str                   # 'hit', or 'built' (after missing/stale/corrupt/forced)
    reason: str                   # why it was built ('' on a hit)
    info: Dict[str, Any]          # build facts from the sidecar (fallback layers, ...)
    build_s: float = 0.0


def get_or_build(cache: EngineCache, key: EngineKey, path: str, *,
                 build: Callable[[], Tuple[bytes, Dict[str, Any]]],
                 deserialize: Callable[[bytes], Any],
                 force: bool = False) -> CacheOutcome:
    """Return a deserialized engine for ``key``, from ``path`` when valid, else built.

    :param build: returns ``(serialized engine bytes, info dict)``.
    :param deserialize: returns the engine object; may raise or return None on bad bytes.
    :param force: rebuild even on a valid hit (``force_engine_update``).
    :raises BackendError: a freshly built engine does not deserialize.
    """
    if force:
        reason = 'force_engine_update'
    else:
        found = cache.lookup(key, path)
        reason = '%s: %s' % (found.status, found.reason)
        if found.status == 'hit':
            try:
                engine = deserialize(found.engine)
            except Exception as exc:  # noqa: BLE001 - library-specific errors: the file is unusable
                engine, err = None, str(exc)
            else:
                err = 'deserialize returned None'
            if engine is not None:
                info = dict((found.sidecar or {}).get('info') or {})
                return CacheOutcome(engine, path, 'hit', '', info)
            reason = 'corrupt: cached engine failed to deserialize (%s)' % err
    cache.check_writable(path)  # before a build of minutes, not after
    cache.invalidate(path)
    t0 = time.perf_counter()
    data, info = build()
    build_s = time.perf_counter() - t0
    info = dict(info)
    info['build_s'] = round(build_s, 3)
    cache.store(key, path, data, info)
    try:
        engine = deserialize(data)
    except Exception as exc:  # noqa: BLE001 - the library's own errors: unusable engine
        raise BackendError('engine built for %s (%s) does not deserialize: %s'
                           % (key.processor, path, exc)) from None
    if engine is None:
        raise BackendError('engine built for %s (%s) does not deserialize' % (key.processor, path))
    return CacheOutcome(engine, path, 'built', reason, info, build_s)
