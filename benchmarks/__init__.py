"""The benchmarks: exactness on public OR instances and the performance runs.

One module per subject (``routing``, ``dispatch``, ``planning``, ``simulate``, ``api``); each
function takes plain arguments (what to load comes in as parameters, e.g. a
:class:`routing.RoadGraphSource`) and returns or yields the JSON records that
``rescue bench ...`` prints, one per line. The command line (``api/cli/bench.py``) only parses
options, fills parameters from the settings and prints. Every timing is reported beside a
baseline measured in the same run (networkx, the naive policy, greedy, one process, a bare
FastAPI insert), never asserted in the tests.

The product packages never import this one (an import-linter contract in pyproject.toml).
"""
