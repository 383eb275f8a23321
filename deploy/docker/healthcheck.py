"""The image's HEALTHCHECK: a worker answers /healthz on RAGLOOP_WORKERS_HEALTH_PORT, the gateway on
RAGLOOP_API_PORT; the container is healthy when either answers 200 (whichever this process serves)."""

import os
import sys
import urllib.request

for port in (os.environ.get("RAGLOOP_WORKERS_HEALTH_PORT", "8080"), os.environ.get("RAGLOOP_API_PORT", "8000")):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        continue
sys.exit(1)
