"""The digital twin: the contention model, the event loop (Python and numba) and faults."""
