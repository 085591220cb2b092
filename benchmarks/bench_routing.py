"""Routing benchmark as a script: same as ``rescue bench routing`` (options pass through).

.venv/bin/python benchmarks/bench_routing.py --breakdowns 1000 --vans 3000 --repeat 5
"""

from __future__ import annotations

import sys

from api.cli import app

if __name__ == "__main__":
    app(["bench", "routing", *sys.argv[1:]])
