"""API throughput benchmark; same as ``rescue bench api`` (see api/bench_api.py).

.venv/bin/python benchmarks/bench_api.py [--clients 200] [--seconds 20]
"""

from __future__ import annotations

import sys

from api.cli import app

if __name__ == "__main__":
    app(["bench", "api", *sys.argv[1:]])
