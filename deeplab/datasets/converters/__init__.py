"""Converters: each turns one folder layout into a `DatasetSpec` (examples + dataset facts).

Formats are registered here by name; `get(name)` raises a UserInputError listing them.
"""

import importlib

from deeplab.contract import FORMATS
from deeplab.errors import UserInputError

# format name -> its converter module (one module per format, named after it).
CONVERTERS = {name: f"deeplab.datasets.converters.{name}" for name in FORMATS}


def get(name: str):
  """The converter module for `name` (it has `describe(source, opts) -> DatasetSpec`)."""
  if name not in FORMATS:
    raise UserInputError(f"unknown --format {name!r}; choose one of {', '.join(FORMATS)}")
  return importlib.import_module(CONVERTERS[name])
