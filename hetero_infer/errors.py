"""The package's exceptions: one base class and a few kinds a caller may want to tell apart."""


class HeteroInferError(Exception):
    """Base class of every error raised on purpose by hetero_infer."""


class ConfigError(HeteroInferError, ValueError):
    """A configuration file, parameter or argument has an invalid value (named in the message)."""


class ModelError(HeteroInferError, ValueError):
    """A model file or model description is missing, malformed or unsupported."""


class BackendError(HeteroInferError, RuntimeError):
    """An execution backend cannot load or run a model on a processor."""
