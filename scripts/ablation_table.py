"""The table of docs/ablation.md from the runs of scripts/ablation.sh: validation accuracy per arm and seed,
the mean, each arm's paired difference to `production` (same seed) with its spread, and the rarest class
(disgust) on validation, since class weights aim at it.

    .venv/bin/python scripts/ablation_table.py [runs/ablation-e8]
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ablation-e8")
    val: dict[str, dict[int, float]] = defaultdict(dict)
    test: dict[str, dict[int, float]] = defaultdict(dict)
    disgust: dict[str, dict[int, float]] = defaultdict(dict)
    for report in sorted(root.glob("*-s*/report.json")):
        arm, seed = report.parent.name.rsplit("-s", 1)
        r = json.loads(report.read_text())
        val[arm][int(seed)] = r["validation"]["accuracy"] * 100
        test[arm][int(seed)] = r["accuracy"] * 100
        disgust[arm][int(seed)] = r["validation"].get("per_class", {}).get("disgust", float("nan")) * 100
    if not val:
        print(f"no finished runs under {root}", file=sys.stderr)
        return 1
    seeds = sorted({s for per in val.values() for s in per})
    print(
        "| arm | " + " | ".join(f"val seed {s}" for s in seeds) + " | val mean | Δ val vs production (mean ± sd) "
        "| val disgust mean | PublicTest mean |"
    )
    print("|---|" + "---:|" * (len(seeds) + 4))
    for arm in sorted(val, key=lambda a: (a != "production", a)):
        cells = [f"{val[arm][s]:.1f}" if s in val[arm] else "" for s in seeds]
        deltas = [val[arm][s] - val["production"][s] for s in val[arm] if s in val.get("production", {})]
        if arm == "production" or not deltas:
            delta = ""
        else:
            spread = f" ± {statistics.stdev(deltas):.1f} (n={len(deltas)})" if len(deltas) > 1 else " (n=1: no spread)"
            delta = f"{statistics.fmean(deltas):+.1f}{spread}"
        print(
            f"| {arm} | " + " | ".join(cells) + f" | {statistics.fmean(val[arm].values()):.1f} | {delta} "
            f"| {statistics.fmean(disgust[arm].values()):.1f} | {statistics.fmean(test[arm].values()):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
