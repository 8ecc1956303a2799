"""The gate with a champion evaluated on this run's split: the interval, the per-class rule and
min_miou, each exactly on its threshold (passes) and the nearest float beyond it (fails)."""

import math

import numpy as np
import pytest

from deeplab.evaluation import compare
from deeplab_pipeline.gate import KEEP, PROMOTE, decide

MIN_MIOU, TOLERANCE, MAX_DROP = 0.5, 0.125, 0.25


def _comparison(low, high=0.5, delta=0.0625, class_delta=0.0, champion=0.75):
  return {"candidate_miou": champion + delta, "champion_miou": champion, "delta": delta,
          "delta_ci": [low, high], "confidence": 0.95, "resamples": 1000, "seed": 0,
          "num_images": 10,
          "per_class": [{"class": "background", "candidate_iou": 0.875, "champion_iou": 0.875,
                         "delta": 0.0},
                        {"class": "cat", "candidate_iou": 0.5 + class_delta,
                         "champion_iou": 0.5, "delta": class_delta}]}


def _decide(comparison, miou=0.75, mode="not_worse", champion=None):
  return decide(miou, min_miou=MIN_MIOU, tolerance=TOLERANCE,
                champion=champion or {"miou": 0.75}, comparison=comparison, mode=mode,
                max_class_iou_drop=MAX_DROP)


@pytest.mark.parametrize("low,mode,passed", [
    (-TOLERANCE, "not_worse", True),
    (math.nextafter(-TOLERANCE, -1.0), "not_worse", False),
    (math.nextafter(0.0, 1.0), "significantly_better", True),
    (0.0, "significantly_better", False),
], ids=["at_minus_tolerance", "below_minus_tolerance", "just_above_zero", "at_zero"])
def test_interval_lower_bound_on_each_side(low, mode, passed):
  d = _decide(_comparison(low), mode=mode)
  assert d["passed"] is passed, d["reason"]
  assert d["verdict"] == (PROMOTE if passed else KEEP)
  assert d["compared_on"] == "same_split" and d["delta_ci"][0] == low
  if not passed:
    assert "champion stays" in d["reason"]


@pytest.mark.parametrize("class_delta,passed", [
    (-MAX_DROP, True), (math.nextafter(-MAX_DROP, -1.0), False)])
def test_class_drop_on_each_side_names_the_class(class_delta, passed):
  d = _decide(_comparison(0.0, class_delta=class_delta))
  assert d["passed"] is passed, d["reason"]
  if not passed:
    assert "class cat lost" in d["reason"] and "background" not in d["reason"]


def test_min_miou_still_holds_with_a_comparison():
  good = _comparison(0.25)
  assert _decide(good, miou=MIN_MIOU)["passed"]
  d = _decide(good, miou=math.nextafter(MIN_MIOU, 0.0))
  assert not d["passed"] and "below min_miou" in d["reason"]


def test_same_weights_are_never_called_worse():
  m = np.random.default_rng(0).integers(0, 100, (30, 3, 3))
  c = compare.compare(m, m, ["a", "b", "c"])
  d = decide(c["candidate_miou"], min_miou=0.0, tolerance=0.0, champion={"miou": 0.99},
             comparison=c, max_class_iou_drop=0.0)
  assert d["passed"] and d["delta"] == 0.0 and d["delta_ci"] == [0.0, 0.0]
  strict = decide(c["candidate_miou"], min_miou=0.0, tolerance=0.0, champion={"miou": 0.99},
                  comparison=c, mode="significantly_better", max_class_iou_drop=0.0)
  assert not strict["passed"] and "worse" not in strict["reason"]


def test_champion_recorded_on_easier_data_is_judged_on_the_same_split():
  # Recorded 0.9375 on its own (easier) split; on this split it scores 0.625 and the candidate
  # 0.6875: the old rule (0.6875 < 0.9375 - tolerance) would refuse a better model.
  c = _comparison(0.03125, delta=0.0625, champion=0.625)
  d = _decide(c, miou=0.6875, champion={"miou": 0.9375})
  assert d["passed"], d["reason"]
  assert d["champion_miou"] == 0.625 and d["champion_miou_recorded"] == 0.9375
  assert not decide(0.6875, min_miou=MIN_MIOU, tolerance=TOLERANCE,
                    champion={"miou": 0.9375})["passed"]


def test_champion_recorded_on_harder_data_does_not_let_a_worse_model_through():
  # The case: recorded 0.9107, same-split 0.9125, candidate 0.9009 (0.0116 worse).
  c = _comparison(-0.0150, high=-0.0080, delta=-0.0116, champion=0.9125)
  d = decide(0.9009, min_miou=0.3, tolerance=0.01, champion={"miou": 0.9107}, comparison=c,
             max_class_iou_drop=MAX_DROP)
  assert not d["passed"] and "possibly worse" in d["reason"]
  assert decide(0.9009, min_miou=0.3, tolerance=0.01, champion={"miou": 0.9107})["passed"]


def test_no_comparison_says_why_and_falls_back_to_the_recorded_miou():
  d = decide(0.75, min_miou=MIN_MIOU, tolerance=TOLERANCE, champion={"miou": 0.75},
             champion_note="champion has 4 classes, the dataset 5")
  assert d["passed"] and d["compared_on"] == "recorded_miou"
  assert "4 classes" in d["reason"] and d["champion_miou"] is None


def test_unknown_mode_is_refused():
  with pytest.raises(ValueError, match="not_worse"):
    _decide(_comparison(0.0), mode="better")
