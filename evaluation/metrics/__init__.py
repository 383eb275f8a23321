"""Project-owned HF `evaluate` metric scripts, one folder per metric.

Each folder holds `<name>/<name>.py`, the layout `evaluate.load(folder)` expects. They live
inside the package (not on the Hub) so scoring works on machines with no Hub access and the
metric definitions are versioned with the code that reports them.
"""

from pathlib import Path

METRICS_DIR = Path(__file__).parent
