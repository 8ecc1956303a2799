"""TF Serving's REST row format, built as a client sends it and read as the server reads it."""

import base64
import json

import numpy as np
import pytest

from deeplab.serving import rest


def test_bytes_go_as_b64_and_come_back_identical():
  payload = bytes(range(256)) * 3
  body = rest.predict_body("encoded_image", payload)
  doc = json.loads(body)
  assert doc == {"signature_name": "encoded_image",
                 "instances": [{"b64": base64.b64encode(payload).decode()}]}
  read = rest.read_body(body)
  assert read["signature_name"] == "encoded_image"
  assert read["instances"].shape == (1,) and read["instances"][0] == payload


def test_pixels_go_as_nested_lists_and_stack_into_a_batch_of_one():
  image = np.random.RandomState(0).randint(0, 256, (5, 7, 3)).astype(np.uint8)
  read = rest.read_body(rest.predict_body("serving_default", image))
  assert read["instances"].shape == (1, 5, 7, 3)
  np.testing.assert_array_equal(read["instances"][0], image)
  # No signature named: TF Serving runs serving_default.
  assert rest.read_body(json.dumps({"instances": [[1]]}))["signature_name"] == "serving_default"


def test_the_response_has_one_object_per_instance_naming_each_output():
  labels = np.arange(12, dtype=np.int32).reshape(2, 2, 3)
  body = rest.response_body({"semantic_predictions": labels})
  assert json.loads(body) == {"predictions": [{"semantic_predictions": labels[0].tolist()},
                                              {"semantic_predictions": labels[1].tolist()}]}
  got = rest.read_predictions(body, "semantic_predictions")
  np.testing.assert_array_equal(np.stack(got), labels)


@pytest.mark.parametrize("body", ['{"inputs": {}}', '{"instances": []}', '[1]',
                                  '{"instances": [{"b64": "AA==", "x": 1}]}',
                                  '{"instances": [[1, 2], [3]]}'])
def test_a_body_the_server_would_refuse_is_an_error(body):
  with pytest.raises(ValueError):
    rest.read_body(body)
