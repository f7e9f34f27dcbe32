"""Reproducible benchmarks, run by ``kassa bench NAME``; never timed tests."""
