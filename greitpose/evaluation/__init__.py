"""Benchmarks by the standard protocols: COCO keypoint AP (pycocotools) and MPII PCKh."""
