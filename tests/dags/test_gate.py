"""The blessing gate and the champion record."""

import pytest

from deeplab_pipeline.gate import decide, find_miou
from deeplab_pipeline.promote import asset_uri


@pytest.mark.parametrize("miou,champion,passed,words", [
    (0.50, None, True, ["no champion yet"]),
    (0.20, None, False, ["below min_miou"]),
    (0.49, {"miou": 0.52}, True, ["champion 0.5200"]),  # within tolerance 0.05
    (0.40, {"miou": 0.52}, False, ["worse than the champion", "champion stays"]),
    (None, None, False, ["no mIoU"]),
])
def test_decide(miou, champion, passed, words):
  d = decide(miou, min_miou=0.3, tolerance=0.05, champion=champion)
  assert d["passed"] is passed
  for w in words:
    assert w in d["reason"]


def test_find_miou_in_result_or_nested_metrics():
  assert find_miou({"miou": 0.4}) == 0.4
  assert find_miou({"metrics": {"mean_iou": 0.3}}) == 0.3
  assert find_miou({"x": 1}) is None


def test_asset_uri():
  assert asset_uri("/a/b") == "file:///a/b"
  assert asset_uri("gs://b/x") == "gs://b/x"
