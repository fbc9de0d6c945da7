#!/usr/bin/env python3
"""Golden contours for liverseg-io's RT Structure Set contours: OpenCV's
`findContours(RETR_CCOMP, CHAIN_APPROX_NONE)` (what rt-utils and
TotalSegmentator write) on seeded random masks and a few shapes, and
whether `fillPoly` of those contours gives each mask back.

    python3 tools/golden/contours_golden.py > crates/liverseg-io/tests/golden/contours.json

Needs numpy and opencv-python-headless.
"""
import json

import cv2
import numpy as np


def main():
    rng = np.random.default_rng(20261207)
    cases = []
    shapes = [
        ["....", ".##.", ".##.", "...."],
        ["#"],
        ["#####", "#...#", "#...#", "#####"],
        ["#####", "#...#", "#.#.#", "#...#", "#####"],
        ["#..", ".#.", "..#"],
    ]
    masks = [np.array([[c == "#" for c in r] for r in s], dtype=np.uint8) for s in shapes]
    for k in range(120):
        ny, nx = 2 + k % 9, 3 + k % 13
        density = [0.3, 0.5, 0.7][k % 3]
        masks.append((rng.random((ny, nx)) < density).astype(np.uint8))
    for m in masks:
        contours, _ = cv2.findContours(m.copy(), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        polys = [c.reshape(-1, 2) for c in contours]
        filled = np.zeros_like(m)
        cv2.fillPoly(filled, polys, 1)
        cases.append({
            "nx": int(m.shape[1]),
            "ny": int(m.shape[0]),
            "mask": "".join("#" if v else "." for v in m.ravel()),
            "contours": [[[int(x), int(y)] for x, y in p] for p in polys],
            "fills_back": bool((filled == m).all()),
        })
    print(json.dumps({"opencv": cv2.__version__, "cases": cases}))


if __name__ == "__main__":
    main()
