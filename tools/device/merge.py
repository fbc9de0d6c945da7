#!/usr/bin/env python3
"""Joins `liverseg device-check`'s report and torch_bench.py's into one
JSON, with liverseg's time over PyTorch's per case and precision (below 1
means liverseg is faster), and prints the ratios.

    python3 tools/device/merge.py LIVERSEG.json TORCH.json OUT.json

Either report may be missing (its step failed): the other is kept.
"""
import json
import os
import sys


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ratios(liverseg, torch):
    ours = {}
    for part in (liverseg or {}).get("timings", []):
        for t in part.get("ok", []):
            ours[(t["case"], t["precision"])] = t["median_s"]
    theirs = {}
    for precision, part in (torch or {}).get("timings", {}).items():
        for t in part.get("ok", []):
            theirs[(t["case"], precision)] = t["median_s"]
    rows = []
    for key in sorted(set(ours) & set(theirs)):
        rows.append(dict(case=key[0], precision=key[1], liverseg_s=ours[key], torch_s=theirs[key],
                         ratio=ours[key] / theirs[key] if theirs[key] > 0 else None))
    return rows


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    liverseg, torch = load(sys.argv[1]), load(sys.argv[2])
    rows = ratios(liverseg, torch)
    same_networks = (liverseg or {}).get("parameters") == (torch or {}).get("parameters")
    merged = dict(liverseg=liverseg, torch=torch, same_networks=same_networks, ratios=rows)
    with open(sys.argv[3], "w") as f:
        json.dump(merged, f, indent=2)
    for r in rows:
        print(f"{r['case']:<22} {r['precision']:<5} liverseg {r['liverseg_s']:.4f} s  "
              f"PyTorch {r['torch_s']:.4f} s  ratio {r['ratio']:.2f}")
    if not same_networks:
        print("parameter counts differ:", (liverseg or {}).get("parameters"), (torch or {}).get("parameters"))
    ok = liverseg is not None and liverseg.get("passed") and torch is not None and same_networks
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
