"""Benchmarks, each a module with `run(quick: bool = False) -> None` printing key=value lines."""
