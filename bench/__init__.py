"""Benchmarks of this SDK against the official ``ekuiper`` package and the Go SDK.

Run with ``make bench`` (``python -m bench.run``); see bench/README.md for the method.
"""
