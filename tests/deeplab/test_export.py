"""export: model-zoo tensor names, a TF2-loadable SavedModel, agreement with evaluation for a
run whose config differs from the flag defaults, and a self-check that catches tampering."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from deeplab import export
from deeplab.evaluation import eval_pass, split_reader
from deeplab.exporting import graph as eg
from deeplab.compat import tf
from deeplab.config import load_train_config
from tests.deeplab import _eval_kit as kit
from tests.deeplab import _serving_kit as serving_kit

_EXPORTED = {}


@pytest.fixture
def exported(tmp_path_factory):
  """Exports the shared run once through the CLI, with stale model flags that must be ignored."""
  if "x" not in _EXPORTED:
    data, ckpt = kit.shared_run(tmp_path_factory)
    out = tmp_path_factory.mktemp("export") / "export"
    result = out.parent / "result.json"
    code = kit.run_cli(export, [
        f"--checkpoint_path={ckpt}", f"--export_path={out}", f"--dataset_dir={data}",
        "--num_classes=21", "--output_stride=16",  # the original defaults: ignored
        "--crop_size=41,41", "--num_check_images=4", f"--result_json={result}"])
    assert code == 0
    _EXPORTED["x"] = (data, ckpt, out, json.loads(result.read_text()))
  return _EXPORTED["x"]


def _run_frozen(graph_def, image):
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(graph_def, name="")
  with tf.Session(graph=graph) as sess:
    return sess.run(["SemanticPredictions:0", "SemanticProbabilities:0"],
                    {"ImageTensor:0": image[None]})


def test_export_result_and_files(exported):
  _, ckpt, out, summary = exported
  assert sorted(os.listdir(out)) == ["export_result.json", "frozen_inference_graph.pb",
                                     "saved_model"]
  assert not [p for p in os.listdir(out.parent) if ".tmp-" in p]  # temp folder renamed away
  r = json.loads((out / "export_result.json").read_text())
  assert r["check"]["passed"] and r["check"]["num_images"] == 4
  assert all(i["frozen_graph_differing_pixels"] == 0 and i["saved_model_differing_pixels"] == 0
             and i["saved_model_bytes_differing_pixels"] == 0 for i in r["check"]["images"])
  assert any(len(i["classes_predicted"]) > 1 for i in r["check"]["images"])  # not a constant map
  assert r["model"]["output_stride"] == 8 and r["model"]["num_classes"] == 5
  assert r["model"]["decoder_output_stride"] == [4]
  sizes = {f["path"]: f["bytes"] for f in r["files"]}
  assert sizes["frozen_inference_graph.pb"] == os.path.getsize(out / "frozen_inference_graph.pb")
  assert "saved_model/saved_model.pb" in sizes
  assert summary["check_passed"] and summary["checkpoint_step"] == 7


def test_frozen_graph_tensors(exported):
  _, _, out, _ = exported
  graph_def = eg.read_frozen_graph(str(out / "frozen_inference_graph.pb"))
  assert not any(n.op in ("VariableV2", "VarHandleOp") for n in graph_def.node)
  graph = tf.Graph()
  with graph.as_default():
    tf.import_graph_def(graph_def, name="")
  inp = graph.get_tensor_by_name("ImageTensor:0")
  assert inp.dtype == tf.uint8 and inp.shape.as_list() == [1, None, None, 3]
  pred = graph.get_tensor_by_name("SemanticPredictions:0")
  prob = graph.get_tensor_by_name("SemanticProbabilities:0")
  assert pred.dtype == tf.int32 and pred.shape.rank == 3
  assert prob.dtype == tf.float32 and prob.shape.rank == 4
  for name in ("RawSemanticPredictions:0", "RawSemanticProbabilities:0"):
    graph.get_tensor_by_name(name)
  image = np.random.RandomState(0).randint(0, 255, (23, 37, 3)).astype(np.uint8)
  p, q = _run_frozen(graph_def, image)
  assert p.shape == (1, 23, 37) and q.shape == (1, 23, 37, 5)  # at the input size
  assert p.min() >= 0 and p.max() < 5
  np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-4)


def test_export_reproduces_evaluation_predictions(exported):
  """Frozen graph on raw images == evaluate's own pipeline + graph (same crop) on the split."""
  data, ckpt, out, _ = exported
  cfg = load_train_config(open(os.path.join(os.path.dirname(ckpt), "config.json")).read())
  from deeplab.evaluation import input_size
  policy = input_size.make_policy(cfg.model, kit.SHARED_CROP)  # the export's --crop_size
  graph = eval_pass.EvalGraph(data, "val", 1, policy, 255)
  evaluated = {}
  with graph.session(ckpt) as sess:
    while True:
      try:
        b = sess.run({"pred": graph.predictions, "name": graph.batch["image_name"],
                      "h": graph.batch["height"], "w": graph.batch["width"]})
      except tf.errors.OutOfRangeError:
        break
      evaluated[b["name"][0].decode()] = b["pred"][0][:b["h"][0], :b["w"][0]]
  graph_def = eg.read_frozen_graph(str(out / "frozen_inference_graph.pb"))
  examples = split_reader.read_examples(data, "val", 10, with_label=False)
  assert len(examples) == len(evaluated) == 4
  for name, image, _ in examples:
    np.testing.assert_array_equal(_run_frozen(graph_def, image)[0][0], evaluated[name],
                                  err_msg=name)


def test_saved_model_loads_in_tf2_and_matches_frozen_graph(exported, tmp_path):
  _, _, out, _ = exported
  image = np.random.RandomState(3).randint(0, 255, (30, 26, 3)).astype(np.uint8)
  np.save(tmp_path / "image.npy", image)
  expected = _run_frozen(eg.read_frozen_graph(str(out / "frozen_inference_graph.pb")), image)[0]
  script = textwrap.dedent(f"""
      import numpy as np, tensorflow as tf
      assert tf.executing_eagerly()
      m = tf.saved_model.load({str(out / 'saved_model')!r})
      image = tf.constant(np.load({str(tmp_path / 'image.npy')!r})[None])
      out = m.signatures["serving_default"](images=image)
      np.save({str(tmp_path / 'got.npy')!r}, out["semantic_predictions"].numpy())
      both = m.signatures["probabilities"](images=image)
      print(sorted(out), out["semantic_predictions"].dtype.name,
            both["semantic_probabilities"].shape)
      np.save({str(tmp_path / 'both.npy')!r}, both["semantic_predictions"].numpy())
      """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  # The serving signatures return the class map only (TF Serving's REST API returns every
  # output); the probabilities signature adds them.
  assert "['semantic_predictions'] int32 (1, 30, 26, 5)" in proc.stdout, proc.stdout
  np.testing.assert_array_equal(np.load(tmp_path / "got.npy"), expected)
  np.testing.assert_array_equal(np.load(tmp_path / "both.npy"), expected)


def _tamper_frozen_graph(path):
  graph_def = eg.read_frozen_graph(path)
  for node in graph_def.node:
    if node.op == "Const" and node.name.startswith("logits/semantic/weights"):
      value = tf.make_ndarray(node.attr["value"].tensor)
      node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.roll(value, 1, axis=-1)))
      break
  else:
    raise AssertionError("logits weights not found in the frozen graph")
  eg.write_frozen_graph(graph_def, path)


def test_self_check_catches_a_tampered_frozen_graph(exported, tmp_path, capsys):
  data, ckpt, out, _ = exported
  copy = tmp_path / "export"
  shutil.copytree(out, copy)
  _tamper_frozen_graph(str(copy / "frozen_inference_graph.pb"))
  code = kit.run_cli(export, [f"--checkpoint_path={ckpt}", f"--export_path={copy}",
                              f"--dataset_dir={data}", "--crop_size=41,41", "--check_only",
                              "--num_check_images=1"])
  assert code == 2
  err = capsys.readouterr().err
  assert "self-check failed" in err and "img_000" in err and "frozen graph" in err
  assert "SavedModel differs" not in err  # the untouched SavedModel still agrees


def test_self_check_catches_a_checkpoint_changed_after_export(exported, tmp_path, capsys):
  data, ckpt, out, _ = exported
  changed = serving_kit.rolled_logits_checkpoint(ckpt, tmp_path / "train")
  code = kit.run_cli(export, [f"--checkpoint_path={changed}", f"--export_path={out}",
                              "--crop_size=41,41", "--check_only", "--num_check_images=2"])
  assert code == 2
  err = capsys.readouterr().err
  assert "synthetic_0" in err and "SavedModel" in err and "frozen graph" in err


def test_export_needs_the_runs_config(tmp_path, capsys):
  (tmp_path / "model.ckpt-3.index").write_bytes(b"")
  code = kit.run_cli(export, [f"--checkpoint_path={tmp_path / 'model.ckpt-3'}",
                              f"--export_path={tmp_path / 'out'}"])
  assert code == 2
  assert "config.json" in capsys.readouterr().err
  assert not (tmp_path / "out").exists()


def test_export_path_and_crop_flag_forms():
  # The original passed the .pb path itself and --crop_size twice (multi_integer).
  assert export.split_export_path("/a/b/frozen_inference_graph.pb") == (
      "/a/b", "frozen_inference_graph.pb")
  assert export.split_export_path("gs://b/runs/r/export/") == (
      "gs://b/runs/r/export", "frozen_inference_graph.pb")
  assert export.parse_multi_crop(["513", "257"]) == (513, 257)
  assert export.parse_multi_crop(["513,513"]) == (513, 513)
  assert export.parse_multi_crop(None) is None


def _model(**kw):
  from deeplab.config import ModelConfig
  return ModelConfig(num_classes=3, output_stride=16, **kw)


def test_size_settings_default_explicit_and_recorded(tmp_path):
  from deeplab.evaluation import input_size
  p = export.size_settings(_model(), None, None, None, None, None)["policy"]
  assert not p.fixed and p.max_size == 2049 and p.scales == (1.0,)  # any size, the bound
  p = export.size_settings(_model(max_resize_value=700), None, None, None, None, None)["policy"]
  assert not p.fixed and p.max_size == 700  # the bound defaults to max_resize_value
  s = export.size_settings(_model(), (65, 65), None, None, None, None)
  assert s["policy"].crop_size == (65, 65) and s["source"] == "--crop_size"
  metrics = tmp_path / "metrics.json"
  recorded = input_size.make_policy(
      _model(min_resize_value=300, max_resize_value=640, resize_factor=16), (577, 641),
      scales=(0.5, 1.0), add_flipped_images=True)
  metrics.write_text(json.dumps(dict(input_size.record(recorded), checkpoint="/r/model.ckpt-1",
                                     miou=0.5)))
  p = export.size_settings(_model(), None, None, None, None, str(metrics))["policy"]
  assert p.crop_size == (577, 641) and p.scales == (0.5, 1.0) and p.add_flipped_images
  assert (p.model.min_resize_value, p.model.max_resize_value, p.model.resize_factor) == (
      300, 640, 16)
  # Explicit flags win over the recorded policy.
  p = export.size_settings(_model(), None, [1.0], False, {"max_resize_value": 900},
                           str(metrics))["policy"]
  assert p.crop_size == (577, 641) and p.scales == (1.0,) and not p.add_flipped_images
  assert p.model.max_resize_value == 900 and p.model.min_resize_value == 300
  # An own-size evaluation's bound is read back, 0 (no bound) included.
  metrics.write_text(json.dumps(input_size.record(input_size.make_policy(_model(), None, 0))))
  p = export.size_settings(_model(), None, None, None, None, str(metrics))["policy"]
  assert not p.fixed and p.max_size == 0
  p = export.size_settings(_model(), None, None, None, None, str(metrics), 1025)["policy"]
  assert p.max_size == 1025


def test_eval_metrics_json_without_size_settings_is_a_user_error(tmp_path):
  from deeplab.errors import UserInputError
  old = tmp_path / "metrics.json"
  old.write_text(json.dumps({"miou": 0.5, "eval_crop_size": [513, 513]}))
  with pytest.raises(UserInputError, match=r"metrics.json does not record.*max_resize_value"):
    export.size_settings(_model(), None, None, None, None, str(old))
  with pytest.raises(UserInputError, match="does not exist"):
    export.size_settings(_model(), None, None, None, None, str(tmp_path / "nope.json"))


def test_self_check_always_includes_the_tallest_and_the_widest_image():
  from deeplab.exporting import self_check
  sizes = np.array([[30, 30], [31, 20], [29, 40], [30, 30], [10, 10]])
  assert self_check.pick_indices(sizes, 3) == [0, 1, 2]
  assert self_check.pick_indices(sizes, 1) == [1, 2]  # both, even beyond the count
  assert self_check.pick_indices(sizes, 4) == [0, 1, 2, 3]
  assert self_check.pick_indices(np.zeros((0, 2)), 3) == []


def test_an_image_the_export_cannot_serve_fails_with_exit_2(tmp_path_factory, tmp_path, capsys):
  data, ckpt = kit.shared_run(tmp_path_factory)
  out = tmp_path / "export"
  code = kit.run_cli(export, [f"--checkpoint_path={ckpt}", f"--export_path={out}",
                              f"--dataset_dir={data}", "--crop_size=33,33"])
  assert code == 2
  err = capsys.readouterr().err
  # img_000 is 33x41 and img_002 is 37x30 (the widest and the tallest of the split).
  assert "cannot serve" in err and "'img_000' is 33x41" in err and "'img_002' is 37x30" in err
  assert "--max_resize_value" in err
  assert not out.exists() and not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_resize_flags_serve_larger_images_as_the_original(tmp_path_factory, tmp_path):
  """--max_resize_value at export: larger inputs are resized, predictions come back full size."""
  data, ckpt = kit.shared_run(tmp_path_factory)
  out, result = tmp_path / "export", tmp_path / "result.json"
  code = kit.run_cli(export, [f"--checkpoint_path={ckpt}", f"--export_path={out}",
                              f"--dataset_dir={data}", "--crop_size=33,33",
                              "--max_resize_value=33", f"--result_json={result}"])
  assert code == 0
  r = json.loads((out / "export_result.json").read_text())
  assert r["model"]["max_resize_value"] == 33 and r["crop_size"] == [33, 33]
  assert {(i["height"], i["width"]) for i in r["check"]["images"]} >= {(33, 41), (37, 30)}
  graph_def = eg.read_frozen_graph(str(out / "frozen_inference_graph.pb"))
  image = np.random.RandomState(1).randint(0, 255, (90, 70, 3)).astype(np.uint8)
  assert _run_frozen(graph_def, image)[0].shape == (1, 90, 70)


def test_an_image_still_too_large_after_resize_fails_with_exit_2(tmp_path_factory, tmp_path,
                                                                  capsys):
  # max_resize_value 60 leaves the 33x41 and 37x30 images as they are: larger than 33x33.
  data, ckpt = kit.shared_run(tmp_path_factory)
  out = tmp_path / "export"
  code = kit.run_cli(export, [f"--checkpoint_path={ckpt}", f"--export_path={out}",
                              f"--dataset_dir={data}", "--crop_size=33,33",
                              "--max_resize_value=60"])
  assert code == 2
  err = capsys.readouterr().err
  assert "cannot serve image 'img_000' (33x41)" in err and "crop 33x33" in err
  assert not out.exists() and not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
