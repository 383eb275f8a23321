"""The metric modules load from the package with the Hub switched off and no network."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
import socket

def _no_network(*args, **kwargs):
    raise OSError("network access attempted while loading metrics")

socket.socket.connect = _no_network
socket.create_connection = _no_network
import evaluate.config, huggingface_hub.constants
assert evaluate.config.HF_EVALUATE_OFFLINE and huggingface_hub.constants.HF_HUB_OFFLINE
from evaluation.metric_loader import compute
print(compute("rouge_l", predictions=["a b"], references=["a b"])["rouge_l"],
      compute("token_f1", predictions=["a b"], references=["a b"])["token_f1"],
      compute("context_overlap", predictions=["cat"], references=[["cat"]])["context_overlap"],
      compute("bleu", predictions=["a b"], references=["a b"])["bleu"])
"""


def test_all_metrics_load_and_compute_with_hub_offline(tmp_path):
    # A fresh interpreter: evaluate reads the offline flags once, at import. A fresh modules
    # cache proves nothing comes from an earlier (possibly online) load.
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1.0", "1.0", "1.0", "1.0"]
