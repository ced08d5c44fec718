"""Benchmarks of Clarion against real processes; see bench/README.md."""
