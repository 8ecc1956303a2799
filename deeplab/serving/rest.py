"""TF Serving's REST predict body, built as a client sends it and read as the server reads it.

Row format (`{"instances": [...]}`): each instance is one batch element of the signature's
single input; a JSON object `{"b64": "..."}` stands for bytes (base64), everything else is
a nested list of numbers. The server stacks the instances into one tensor of the input's
dtype and answers `{"predictions": [...]}`, one object per instance naming each output.
Pure Python and numpy, so the body can be checked without TensorFlow.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, List, Mapping

import numpy as np

# What TF Serving runs when a request names no signature (SavedModel's default key).
DEFAULT_SIGNATURE = "serving_default"


def predict_body(signature_name: str, instance: Any) -> str:
  """The request a client sends for one input: bytes go base64-encoded, arrays as lists."""
  value = ({"b64": base64.b64encode(instance).decode("ascii")} if isinstance(instance, bytes)
           else np.asarray(instance).tolist())
  return json.dumps({"signature_name": signature_name, "instances": [value]})


def _value(instance: Any) -> Any:
  if isinstance(instance, Mapping):
    if set(instance) != {"b64"}:
      raise ValueError(f"an instance object must be {{'b64': ...}} for a single-input signature, "
                       f"got keys {sorted(instance)}")
    return base64.b64decode(instance["b64"])
  return instance


def read_body(body: str) -> Dict[str, Any]:
  """{'signature_name', 'instances': the input batch as numpy} from a row-format request.

  Raises:
    ValueError: not a row-format body of one input (what TF Serving answers with 400).
  """
  doc = json.loads(body)
  if not isinstance(doc, Mapping) or not isinstance(doc.get("instances"), list) \
      or not doc["instances"]:
    raise ValueError('the body must be a JSON object with a non-empty "instances" list')
  values = [_value(i) for i in doc["instances"]]
  if all(isinstance(v, bytes) for v in values):
    batch = np.array(values, dtype=object)
  else:
    batch = np.asarray(values)
    if batch.dtype == object:
      raise ValueError("the instances do not form one rectangular tensor")
  return {"signature_name": doc.get("signature_name", DEFAULT_SIGNATURE), "instances": batch}


def response_body(outputs: Mapping[str, np.ndarray]) -> str:
  """`{"predictions": [{output: value}, ...]}`, one object per batch element, as TF Serving."""
  batch = len(next(iter(outputs.values())))
  rows: List[dict] = [{name: np.asarray(value[i]).tolist() for name, value in outputs.items()}
                      for i in range(batch)]
  return json.dumps({"predictions": rows})


def read_predictions(body: str, output: str) -> List[np.ndarray]:
  """One output of every instance of a predict response, as numpy arrays."""
  return [np.asarray(row[output]) for row in json.loads(body)["predictions"]]
