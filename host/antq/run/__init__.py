"""Running models on the overlay: backends by name, Runtime, compare, evaluate, latency and
micro-benchmarks, the demo."""

from .backends import open_overlay

__all__ = ["open_overlay"]
