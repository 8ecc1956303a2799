"""Converters: each turns one folder layout into a `DatasetSpec` (examples + dataset facts).

Formats are registered here by name; `get(name)` raises a UserInputError listing them.
"""

import importlib

from deeplab.errors import UserInputError

FORMATS = {
    "voc": "deeplab.datasets.converters.voc",
    "cityscapes": "deeplab.datasets.converters.cityscapes",
    "ade20k": "deeplab.datasets.converters.ade20k",
    "folder": "deeplab.datasets.converters.folder",
    "synthetic": "deeplab.datasets.converters.synthetic",
}


def get(name: str):
  """The converter module for `name` (it has `describe(source, opts) -> DatasetSpec`)."""
  if name not in FORMATS:
    raise UserInputError(f"unknown --format {name!r}; choose one of {', '.join(FORMATS)}")
  return importlib.import_module(FORMATS[name])
