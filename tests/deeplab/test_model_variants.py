"""Every model variant is wired everywhere a variant goes, and documented (no graph built)."""

import pathlib
import re

import pytest

from deeplab.config import SUPPORTED_VARIANTS, ModelConfig
from deeplab.core import feature_extractor

DOC = pathlib.Path(__file__).parents[2] / "docs" / "compatibility.md"


def test_each_variant_has_a_scope_a_normalisation_and_decoder_end_points():
  for variant in SUPPORTED_VARIANTS:
    assert variant in feature_extractor.NAME_SCOPE
    assert variant in feature_extractor.PREPROCESS_FN
    assert feature_extractor.decoder_end_point_keys(variant, 4)


def test_the_variant_table_lists_every_variant_and_no_variant_is_not_ported():
  text = DOC.read_text()
  rows = [line for line in text.splitlines() if line.startswith("| `")]
  documented = {name for row in rows for name in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}
  assert set(SUPPORTED_VARIANTS) <= documented
  not_ported = [line for line in text.splitlines() if "not ported" in line]
  assert not [v for v in SUPPORTED_VARIANTS for line in not_ported if v in line]


@pytest.mark.parametrize("variant,output_stride,head,ok", [
    ("nas_hnasnet", 8, False, True), ("nas_hnasnet", 16, False, False),
    ("nas_hnasnet", 16, True, True), ("nas_pnasnet", 16, False, True),
    ("nas_pnasnet", 4, False, False), ("nas_pnasnet", 32, False, True)])
def test_nas_output_strides(variant, output_stride, head, ok):
  cfg = ModelConfig(model_variant=variant, output_stride=output_stride,
                    nas_use_classification_head=head)
  problems = cfg.problems()
  assert (problems == []) == ok, problems
  if not ok:
    assert variant in problems[0] and "--output_stride=8" in problems[0]
