"""Datasets: the two on-disk layouts, the `Lab` they are read into, finding a lab's data, `fetch`."""

from cfosstats.datasets.discover import load_lab, resolve_data_root
from cfosstats.datasets.lab import Lab, LabelSource, Problem

__all__ = ["Lab", "LabelSource", "Problem", "load_lab", "resolve_data_root"]
