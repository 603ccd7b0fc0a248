"""Benchmark scripts (run as ``python benchmarks/<name>.py``); a package so ``benchmarks.engineering`` imports."""
