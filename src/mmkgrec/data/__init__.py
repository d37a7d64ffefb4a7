"""Readers, the Dataset, preprocessing and splits."""

from .dataset import Dataset, Interactions, build_dataset
from .registry import load_dataset
from .split import Split, split_dataset

__all__ = ["Dataset", "Interactions", "Split", "build_dataset", "load_dataset", "split_dataset"]
