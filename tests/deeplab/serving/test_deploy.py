"""`python -m deeplab deploy`: the export's SavedModel served as 1/, 2/, ..., each version
answering TF Serving's REST bodies with evaluation's predictions, a wrong model refused."""

import json
import os

import pytest

from deeplab import deploy
from deeplab.serving import push as sp
from tests.deeplab import _eval_kit as kit
from tests.deeplab import _serving_kit as serving_kit
from tests.deeplab.test_export import exported  # noqa: F401 (the shared export, built once)

pytestmark = pytest.mark.slow


def _deploy(export_dir, base, push_id, result, *extra):
  return kit.run_cli(deploy, [f"--export_path={export_dir}", f"--serving_base_path={base}",
                              "--model_name=deeplab", f"--push_id={push_id}",
                              f"--result_json={result}", *extra])


def test_two_deploys_serve_1_then_2_and_a_wrong_model_leaves_2_newest(exported, tmp_path,
                                                                       capsys):
  data, ckpt, out, _ = exported
  base = tmp_path / "serving"
  assert _deploy(out, base, "run-1", tmp_path / "r1.json", f"--dataset_dir={data}",
                 "--num_check_images=2") == 0
  first = json.loads((tmp_path / "r1.json").read_text())
  check = first["request_check"]
  assert (first["version"], first["previous"], check["passed"]) == (1, None, True)
  assert check["num_images"] >= 2  # the split's tallest and widest image at least
  assert all(r["encoded_differing_pixels"] == 0 == r["uint8_differing_pixels"]
             for r in check["images"])
  # The version is the export's SavedModel, byte for byte, plus the push record.
  served = base / "deeplab" / "1"
  source = out / "saved_model"
  for path in source.rglob("*"):
    if path.is_file():
      assert (served / path.relative_to(source)).read_bytes() == path.read_bytes()
  assert json.loads((served / sp.PUSH_RECORD).read_text())["push_id"] == "run-1"

  assert _deploy(out, base, "run-2", tmp_path / "r2.json", "--num_check_images=1") == 0
  second = json.loads((tmp_path / "r2.json").read_text())
  assert (second["version"], second["previous"]) == (2, 1)
  assert second["request_check"]["passed"] and second["request_check"]["source"] == "synthetic"
  # A retry of the second push: nothing new.
  assert _deploy(out, base, "run-2", tmp_path / "r2b.json") == 0
  assert json.loads((tmp_path / "r2b.json").read_text())["reused"] is True
  capsys.readouterr()

  wrong = serving_kit.rolled_logits_checkpoint(ckpt, tmp_path / "wrong")
  assert _deploy(out, base, "run-3", tmp_path / "r3.json", f"--checkpoint_path={wrong}",
                 "--num_check_images=1") == 2
  err = capsys.readouterr().err
  assert "request check failed" in err and "synthetic_0" in err and "stays 2" in err
  assert sorted(os.listdir(base / "deeplab")) == ["1", "2"]  # no staging folder left
  assert sp.newest(str(base / "deeplab")) == 2 and not (tmp_path / "r3.json").exists()


def test_a_folder_that_is_not_an_export_exits_2(tmp_path, capsys):
  assert _deploy(tmp_path, tmp_path / "serving", "x", tmp_path / "r.json") == 2
  assert "export_result.json" in capsys.readouterr().err
