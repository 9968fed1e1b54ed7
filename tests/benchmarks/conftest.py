"""benchmarks/ is a package at the repository root, not installed: put the root on the
path for every test of it (the worker processes the tests start get it from their cwd)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
