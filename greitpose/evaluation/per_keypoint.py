"""Which joints a model gets right: the mean OKS term of each keypoint over the people COCOeval
matched, so an AP can be read as "wrists and ankles are off" rather than one number."""

from __future__ import annotations

from typing import Any

import numpy as np

from greitpose.evaluation.oks import oks_terms


def matched_pairs(ev: Any) -> list[tuple[int, int]]:
    """(ground-truth id, prediction id) of each person pair an evaluated COCOeval matched at its
    loosest OKS threshold (0.5), over all areas; pairs with an ignored person are left out."""
    params = ev.params
    pairs = []
    for entry in ev.evalImgs:
        if entry is None or entry["aRng"] != params.areaRng[0] or entry["maxDet"] != params.maxDets[-1]:
            continue
        for gt_id, ignored, dt_id in zip(entry["dtMatches"][0], entry["dtIgnore"][0], entry["dtIds"]):
            if gt_id > 0 and not ignored:
                pairs.append((int(gt_id), int(dt_id)))
    return pairs


def keypoint_similarity(ev: Any, sigmas: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """{"matched": people, "similarity": {keypoint: mean OKS term or None}} over the matched pairs,
    each keypoint averaged over the people whose ground truth labels it."""
    terms: list[list[float]] = [[] for _ in names]
    pairs = matched_pairs(ev)
    for gt_id, dt_id in pairs:
        gt, dt = ev.cocoGt.anns[gt_id], ev.cocoDt.anns[dt_id]
        truth = np.asarray(gt["keypoints"], np.float64).reshape(-1, 3)
        found = np.asarray(dt["keypoints"], np.float64).reshape(-1, 3)
        row = oks_terms(truth[:, :2], found[None, :, :2], float(gt["area"]), sigmas)[0]
        for k in np.flatnonzero(truth[:, 2] > 0):
            terms[k].append(float(row[k]))
    return {"matched": len(pairs),
            "similarity": {name: (float(np.mean(t)) if t else None) for name, t in zip(names, terms)}}
