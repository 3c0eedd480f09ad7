"""The Markdown table of docs/performance.md from a ``benchmarks/run.py --json`` file.

    python benchmarks/table.py benchmarks/results/epyc-zen4-2core.json
"""

from __future__ import annotations

import json
import sys
from typing import Any


def speedup(v: dict[str, Any]) -> str:
    parts = []
    if v["variant"].startswith("notebook"):
        sp = v.get("speedup_vs_notebook", 1.0)
        parts.append("1.0×" if sp == 1.0 else f"({sp:.1f}× the seed's)")
    elif v.get("speedup_vs_notebook") is not None:
        parts.append(f"{v['speedup_vs_notebook']:.1f}×")
    for key, value in v.items():
        if key.startswith("speedup_vs_notebook_"):
            parts.append(f"{value:.1f}× the {key.split('_')[3]}-worker loop")
    if "speedup_vs_one_by_one" in v:
        parts.append(f"{v['speedup_vs_one_by_one']:.2f}× one by one")
    if "speedup_vs_fp32" in v:
        parts.append(f"{v['speedup_vs_fp32']:.2f}× fp32")
    return "; ".join(parts)


def table(doc: dict[str, Any]) -> str:
    lines = ["| workload | variant | seconds | train FLOPs | MFU | vs notebook |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for w in doc["workloads"]:
        for v in w["variants"]:
            mfu = f"{100 * v['mfu']:.0f}%" + (" of bf16 peak" if "bf16" in v["variant"] else "")
            lines.append(f"| {v['workload']} | {v['variant']} | {v['seconds']:.3f} | {v['train_flops'] / 1e9:.1f} G | "
                         f"{mfu} | {speedup(v)} |")
    return "\n".join(lines)


def main(path: str) -> int:
    doc = json.loads(open(path, encoding="utf-8").read())
    m, peak = doc["machine"], doc["peak"]
    print(f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, Python {m['python']}; peak "
          + ", ".join(f"{k} {v['flops_per_second'] / 1e9:.0f} GFLOP/s" for k, v in peak.items())
          + f"; load average {m['load_average_at_start']:.2f} at the start, "
          f"{m['load_average_at_end']:.2f} at the end\n")
    print(table(doc))
    acc = doc.get("bf16_accuracy")
    if acc:
        print(f"\nbf16 accuracy (W1, {acc['epochs']} epochs, {acc['seeds']} seeds): "
              f"fp32 {100 * acc['fp32_mean']:.2f}%, bf16 {100 * acc['bf16_mean']:.2f}% "
              f"({acc['difference_points']:+.2f} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
