"""The gate exactly on its thresholds: mIoU == min_miou or == champion − tolerance passes (≥),
the nearest float below fails. Values are exact binary fractions so that no rounding hides an
off-by-one comparison.
"""

import math

import pytest

from deeplab_pipeline.gate import decide

MIN_MIOU = 0.5
CHAMPION = {"miou": 0.75}
TOLERANCE = 0.125
CHAMPION_THRESHOLD = 0.625  # 0.75 - 0.125, exact in binary


def _below(x: float) -> float:
  return math.nextafter(x, 0.0)


@pytest.mark.parametrize("miou,champion,passed", [
    (MIN_MIOU, None, True),
    (_below(MIN_MIOU), None, False),
    (CHAMPION_THRESHOLD, CHAMPION, True),
    (_below(CHAMPION_THRESHOLD), CHAMPION, False),
    # A weak champion: min_miou still holds, on both sides.
    (MIN_MIOU, {"miou": 0.25}, True),
    (_below(MIN_MIOU), {"miou": 0.25}, False),
], ids=["at_min_miou", "below_min_miou", "at_champion_threshold", "below_champion_threshold",
        "weak_champion_at_min_miou", "weak_champion_below_min_miou"])
def test_gate_on_each_threshold(miou, champion, passed):
  d = decide(miou, min_miou=MIN_MIOU, tolerance=TOLERANCE, champion=champion)
  assert d["passed"] is passed, d["reason"]
  if champion is CHAMPION:
    assert d["threshold"] == CHAMPION_THRESHOLD


def test_never_promotes_below_the_threshold_however_close():
  for champion, threshold in ((None, MIN_MIOU), (CHAMPION, CHAMPION_THRESHOLD)):
    for miou in (0.0, threshold / 2, _below(threshold)):
      d = decide(miou, min_miou=MIN_MIOU, tolerance=TOLERANCE, champion=champion)
      assert not d["passed"], f"promoted mIoU {miou!r} below the threshold {threshold}"
