"""hetero_infer: interference-aware DNN serving on heterogeneous edge processors."""

__version__ = '0.1.0'
