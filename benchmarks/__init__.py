"""Benchmarks: one module per question, each printing a table; `make bench` runs them all (benchmarks.run)."""
