"""Benchmarks registry: `get_benchmark(name).load(data_file, limit)` -> (items, provenance)."""

from advgame.eval.benchmarks.base import Benchmark, EvalItem
from advgame.eval.benchmarks.registry import BENCHMARKS, get_benchmark
from advgame.eval.benchmarks.sources import ChecksumMismatch, DataUnavailable

__all__ = ["BENCHMARKS", "Benchmark", "ChecksumMismatch", "DataUnavailable", "EvalItem", "get_benchmark"]
