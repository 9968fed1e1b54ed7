"""matrixhpc against Meta's Matrix (fair-matrix 0.2.6) on one simulated LLM server.

Two sides, two interpreters:

* run with the project venv: :mod:`.compare` (the driver), :mod:`.runs` (launching and
  measuring a run), :mod:`.server` (the shared server and its counters), :mod:`.window`,
  :mod:`.records`, :mod:`.summary` (the arithmetic), :mod:`.dataset` (the rows);
* run with the Matrix venv (``setup_venv.sh``; they import ``matrix`` and ``ray``):
  :mod:`.run_matrix` (Matrix's framework with a local Ray), :mod:`.scenario` (fixed-turn
  Coral, the python extractor), :mod:`.adapter` (its LLM client on a fixed URL), and
  :mod:`.plot` (matplotlib). Nothing here is imported by matrixhpc itself.

Configs: ``coral_fixed.yaml`` (matrixhpc) and ``matrix_coral.yaml`` (Matrix), the same
workload. See benchmarks/README.md, "Against Matrix itself".
"""
