"""``benchmarks/run.py --tiny`` runs end to end and writes the JSON it documents; nothing about time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "run.py"


@pytest.mark.slow
def test_tiny_benchmark_writes_every_workload(tmp_path, mnist_dir):
    out = tmp_path / "bench.json"
    env = {**os.environ, "NNSTUDY_DATA": str(mnist_dir)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--repeat", "1", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "peak matmul: float32" in proc.stdout and "W4" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["tiny"] and doc["machine"]["cores"] >= 1 and doc["peak"]["float32"]["flops_per_second"] > 0
    names = [w["workload"] for w in doc["workloads"]]
    assert names == ["W1", "W2", "W3", "W4", "W5"]
    for w in doc["workloads"]:
        assert {"seconds", "mfu", "speedup_vs_notebook", "train_flops", "variants"} <= w.keys()
        assert w["seconds"] > 0 and 0 < w["mfu"] and w["train_flops"] > 0
    w2 = doc["workloads"][1]
    assert w2["variant"].startswith("nnstudy packed") and w2["speedup_vs_one_by_one"] > 0
    w5 = doc["workloads"][4]  # seed 003's Keras CNN: packed module-engine lanes against one by one
    assert w5["variant"].startswith("nnstudy packed") and w5["speedup_vs_one_by_one"] > 0
    assert w5["max_relative_loss_difference"] < 1e-2
    if doc["bf16_supported"]:
        assert {"fp32_mean", "bf16_mean", "difference_points"} <= doc["bf16_accuracy"].keys()
    # docs/performance.md's table is rendered from such a file
    table = subprocess.run([sys.executable, str(SCRIPT.with_name("table.py")), str(out)], capture_output=True,
                           text=True)
    assert table.returncode == 0, table.stderr[-3000:]
    rows = [line for line in table.stdout.splitlines() if line.startswith("| W")]
    assert len(rows) == sum(len(w["variants"]) for w in doc["workloads"])
    assert any(line.startswith("| W2 | nnstudy packed") and "one by one" in line for line in rows)


def test_the_cnn_packing_formulations_compute_the_lanes_own_outputs_and_are_timed():
    """benchmarks/cnn_packing.py (docs/trainer.md's W5 formulations), at a size that takes a second:
    its packed programs equal the lanes alone, and every formulation gets a time."""
    proc = subprocess.run([sys.executable, str(SCRIPT.with_name("cnn_packing.py")), "--lanes", "3", "--batch", "4",
                           "--steps", "1", "--threads", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    gaps = proc.stdout.split("relative to their largest output: ")[1].splitlines()[0]
    assert all(float(part.split()[1]) < 1e-5 for part in gaps.split(", ")), gaps
    rows = [line.split() for line in proc.stdout.splitlines() if line.endswith("x") and "ms/step" not in line]
    assert len(rows) == 5 and all(float(r[-3]) > 0 for r in rows), proc.stdout
