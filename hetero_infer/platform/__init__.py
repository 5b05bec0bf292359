"""Platform files: processors, DRAM bandwidth and the contention curves' parameters."""
