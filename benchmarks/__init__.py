"""Benchmarks of matrixhpc: see benchmarks/README.md.

A package so that worker processes started by ``matrixhpc run`` (cwd: the repository root)
can import the benchmark's agents, e.g. ``benchmarks.dialogue:DialogueTurn``.
"""
