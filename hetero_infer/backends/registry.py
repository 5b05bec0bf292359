"""The backend family's registry (:class:`hetero_infer.registry.Registry`), keyed by the name a
user types (the serving ``backend`` parameter, ``--backend``).

``create_backend(name, *, platform, seed, **options)`` creates one through the class's
:meth:`~hetero_infer.backends.base.Backend.create` (each backend takes from the platform and
seed what it needs: the emulated backend emulates that platform, the null backend provides its
processors) and fails with a :class:`ConfigError` listing the known names. The built-in
backends are ``'module:Class'`` entries, so TensorRT and onnxruntime are imported only when
their backend is used; installed packages add theirs in the entry-point group
``hetero_infer.backends`` (``name = module:Class``, a :class:`Backend` subclass or a factory
``f(*, platform, seed, **options) -> Backend``).
"""

from typing import Any, Callable, Optional, Tuple, Union

from hetero_infer.backends.base import Backend
from hetero_infer.errors import BackendError, ConfigError
from hetero_infer.registry import Registry

#: Entry-point group of backends installed packages provide.
ENTRY_POINT_GROUP = 'hetero_infer.backends'

BackendFactory = Union[str, Callable[..., Backend]]


def _adapt(name: str, obj: Any) -> Callable[..., Backend]:
    if not callable(obj):
        raise ConfigError('backend %r is %r, not a Backend subclass or factory' % (name, obj))
    return obj


def _load_error(name: str, what: str, exc: BaseException) -> Optional[BaseException]:
    if isinstance(exc, ImportError):
        return BackendError('backend %r needs a library that is not installed: %s' % (name, exc))
    return None


BACKENDS = Registry('backend', group=ENTRY_POINT_GROUP, adapt=_adapt, load_error=_load_error)

for _name, _spec in (('emulated', 'emulated:EmulatedBackend'),
                     ('null', 'null:NullBackend'),
                     ('onnxruntime', 'onnxruntime_backend:OnnxRuntimeBackend'),
                     ('tensorrt', 'tensorrt_backend:TensorRTBackend')):
    BACKENDS.register(_name, 'hetero_infer.backends.' + _spec)


def register_backend(name: str, factory: BackendFactory) -> None:
    """Register a backend class (or ``'module:Class'`` string, imported on first use).

    :raises ConfigError: ``name`` is empty or already registered.
    """
    BACKENDS.register(name, factory)


def unregister_backend(name: str) -> None:
    """:raises ConfigError: ``name`` is not registered."""
    BACKENDS.unregister(name)


def backend_names() -> Tuple[str, ...]:
    """Registered backend names (installed entry points included), sorted."""
    return tuple(sorted(BACKENDS.names()))


def backend_class(name: str) -> Callable[..., Backend]:
    """The class registered as ``name`` (importing its module if needed).

    :raises ConfigError: unknown name (the message lists the known ones).
    :raises BackendError: the backend's library is not installed.
    """
    return BACKENDS.get(name)


def create_backend(name: str, *, platform: Any = None, seed: int = 0,
                   **options: Any) -> Backend:
    """Create the backend registered as ``name`` for ``platform`` (a
    :class:`~hetero_infer.platform.spec.Platform`, a platform name, or None) and ``seed``, with
    its own ``options`` (:meth:`Backend.create`).

    :raises ConfigError: unknown name (the message lists the known ones) or bad option.
    :raises BackendError: the backend's library is missing or cannot start.
    """
    factory = backend_class(name)
    create = getattr(factory, 'create', None)
    if create is None:  # a plain factory function registered by a user
        return factory(platform=platform, seed=seed, **options)
    return create(platform=platform, seed=seed, **options)
