"""glibc malloc tuned at process start (indexer.memory): an eager forward pass repeated over same-sized batches
reuses its buffers instead of faulting fresh pages in every time."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from indexer.memory import tune_malloc

ROOT = Path(__file__).resolve().parents[1]
FORWARD = """
import resource, sys
if sys.argv[1] == "tuned":
    from indexer.memory import tune_malloc
    assert tune_malloc()
import torch
torch.set_num_threads(2)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(32, 32, 3, padding=1, groups=32), torch.nn.Conv2d(32, 64, 1)).eval()
x = torch.rand(8, 3, 224, 224)
with torch.inference_mode():
    net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        net(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", FORWARD, mode], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.strip())


def test_tuned_malloc_stops_the_page_faults_of_repeated_batches():
    default, tuned = _faults("default"), _faults("tuned")
    assert default > 100_000 and tuned < default / 5, (default, tuned)


def test_an_environment_that_sets_the_thresholds_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert tune_malloc() is False
