"""Bounded YAML / JSON readers and schema validation: the bottom of the package."""
