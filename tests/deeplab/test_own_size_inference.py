"""Each image at its own size: a prediction depends on its own image alone, the image pooling
ignores padding, and the export serves any size exactly as evaluation scored it."""

import os

import numpy as np
import pytest

from deeplab import export, model
from deeplab.compat import tf
from deeplab.config import ModelConfig, load_train_config
from deeplab.evaluation import eval_pass, input_size, split_reader
from deeplab.exporting import graph as eg
from deeplab.exporting import self_check
from tests.deeplab import _eval_kit as kit


def _shared_model(data_ckpt):
  _, ckpt = data_ckpt
  return load_train_config(open(os.path.join(os.path.dirname(ckpt), "config.json")).read()).model


def _evaluated(data, ckpt, policy, batch_size=1):
  """{image name: prediction at the original size} from evaluate's graph, without graph
  rewrites (as the self-check compares: a fused or folded batch norm rounds differently)."""
  graph = eval_pass.EvalGraph(data, "val", batch_size, policy, 255)
  out = {}
  with tf.Session(graph=graph.graph, config=self_check.exact_session_config()) as sess:
    graph.saver.restore(sess, ckpt)
    while True:
      b = eval_pass.run_batch(sess, {"pred": graph.predictions, "name": graph.batch["image_name"],
                                     "h": graph.batch["height"], "w": graph.batch["width"]})
      if b is None:
        return out
      for i, name in enumerate(b["name"]):
        out[name.decode()] = b["pred"][i][:b["h"][i], :b["w"][i]]


def test_valid_region_pooling_is_the_mean_over_the_image_cells_only():
  rng = np.random.RandomState(0)
  feats = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
  valid = np.array([[33, 49], [17, 97]], np.int32)  # OS 16: 3x4 and 2x7 cells
  with tf.Graph().as_default(), tf.Session() as sess:
    got = sess.run(model._pool_valid_region(tf.constant(feats), tf.constant(valid), 16))
  expected = np.stack([feats[0, :3, :4].mean((0, 1)), feats[1, :2, :7].mean((0, 1))])
  np.testing.assert_allclose(got[:, 0, 0], expected, rtol=1e-5)


def test_a_prediction_does_not_depend_on_the_other_images_of_the_split(tmp_path_factory,
                                                                        tmp_path):
  """The same images alone, beside a larger image, and beside a smaller one: identical maps."""
  data_ckpt = kit.shared_run(tmp_path_factory)
  _, ckpt = data_ckpt
  policy = input_size.make_policy(_shared_model(data_ckpt))
  sizes = ((33, 41), (29, 33))
  alone = kit.write_dataset(str(tmp_path / "alone"), num_classes=kit.SHARED_CLASSES, sizes=sizes)
  # A larger image (the old rule's crop would grow to 161x177) and a smaller one join.
  mixed = kit.write_dataset(str(tmp_path / "mixed"), num_classes=kit.SHARED_CLASSES,
                            sizes=sizes + ((150, 170), (17, 19)))
  base = _evaluated(alone, ckpt, policy)
  assert len(np.unique(np.concatenate([p.ravel() for p in base.values()]))) > 1
  # Batched, images of different sizes share a window: bucketing by network size keeps each
  # one at its own size (padding a small image to its batch's largest changed 35-65% of its
  # pixels when tried).
  for batch_size in (1, 4):
    got = _evaluated(mixed, ckpt, policy, batch_size)
    for name, pred in base.items():  # write_dataset: image i is the same in both splits
      np.testing.assert_array_equal(got[name], pred, err_msg=f"{name}, batch {batch_size}")


def test_a_fixed_crop_export_of_a_crop_sized_image_gives_the_original_ops_result(
    tmp_path_factory, tmp_path):
  """--crop_size keeps the model zoo's ops: an image exactly the crop size (no padding) gives
  what the original graph (model.predict_labels at the static crop, pooled over the crop
  window) gives, pixel for pixel."""
  data_ckpt = kit.shared_run(tmp_path_factory)
  data, ckpt = data_ckpt
  cfg = _shared_model(data_ckpt)
  out = tmp_path / "export"
  export.export(ckpt, str(out), crop_size=kit.SHARED_CROP, dataset_dir=data, num_check_images=1)
  image = np.random.RandomState(5).randint(0, 255, kit.SHARED_CROP + (3,)).astype(np.uint8)
  with tf.Graph().as_default() as graph:
    x = tf.placeholder(tf.uint8, [1] + list(kit.SHARED_CROP) + [3])
    original = model.predict_labels(tf.cast(x, tf.float32), cfg, kit.SHARED_CROP)
    with tf.Session(graph=graph, config=self_check.exact_session_config()) as sess:
      tf.train.Saver().restore(sess, ckpt)
      expected = sess.run(original, {x: image[None]})
  with tf.Graph().as_default() as graph:
    tf.import_graph_def(eg.read_frozen_graph(str(out / eg.FROZEN_GRAPH)), name="")
    with tf.Session(graph=graph, config=self_check.exact_session_config()) as sess:
      labels, probs = sess.run([eg.PREDICTIONS_NAME + ":0", eg.RAW_PROBABILITIES_NAME + ":0"],
                               {eg.INPUT_NAME + ":0": image[None]})
  np.testing.assert_array_equal(labels, expected["semantic"])
  # Bit for bit, not only the argmax: the same ops in the same order.
  np.testing.assert_array_equal(probs, expected["semantic_prob"])


def _smooth_example(seed, height, width):
  """A cheap-to-encode image (gradients, a few rectangles) and its label."""
  rng = np.random.RandomState(seed)
  yy, xx = np.mgrid[0:height, 0:width]
  image = np.stack([(yy * 255 // max(height - 1, 1)), (xx * 255 // max(width - 1, 1)),
                    np.full_like(yy, 90)], -1).astype(np.uint8)
  label = np.zeros((height, width), np.uint8)
  for c in range(1, kit.SHARED_CLASSES):
    y, x = rng.randint(0, height // 2), rng.randint(0, width // 2)
    h, w = max(4, height // 3), max(4, width // 3)
    image[y:y + h, x:x + w] = (60 * c, 255 - 50 * c, 40 * c)
    label[y:y + h, x:x + w] = c
  return image, label


def _write_split(folder, sizes):
  from deeplab.datasets import features
  os.makedirs(folder, exist_ok=True)
  with tf.io.TFRecordWriter(os.path.join(folder, features.shard_name("val", 0, 1))) as w:
    for i, (h, wd) in enumerate(sizes):
      image, label = _smooth_example(i, h, wd)
      feats = {features.IMAGE_ENCODED: kit._bytes(kit._png(image)),
               features.IMAGE_FILENAME: kit._bytes(f"img_{i:03d}".encode()),
               features.IMAGE_FORMAT: kit._bytes(b"png"),
               features.IMAGE_HEIGHT: kit._int(h), features.IMAGE_WIDTH: kit._int(wd),
               features.LABEL_ENCODED: kit._bytes(kit._png(label)),
               features.LABEL_FORMAT: kit._bytes(b"png")}
      w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
  return folder


@pytest.mark.slow
def test_the_export_serves_96_513_and_4000x3000_exactly_as_evaluation(tmp_path_factory,
                                                                       tmp_path):
  """Own-size export: any height and width; a 4000x3000 photo is resized into range (the
  default bound, 2049) and its prediction comes back at 4000x3000, equal to evaluation's."""
  data_ckpt = kit.shared_run(tmp_path_factory)
  _, ckpt = data_ckpt
  sizes = [(96, 96), (513, 513), (3000, 4000)]
  data = _write_split(str(tmp_path / "data"), sizes)
  policy = input_size.make_policy(_shared_model(data_ckpt))
  evaluated = _evaluated(data, ckpt, policy)
  out = tmp_path / "export"
  result = export.export(ckpt, str(out), dataset_dir=data, num_check_images=3)
  assert result["crop_size"] is None and result["check"]["passed"]
  assert {(i["height"], i["width"]) for i in result["check"]["images"]} == set(sizes)
  graph_def = eg.read_frozen_graph(str(out / eg.FROZEN_GRAPH))
  examples = split_reader.read_examples(data, "val", 10, with_label=False)
  served = self_check.frozen_predictions(graph_def, [(n, img) for n, img, _ in examples])
  for (name, image, _), pred in zip(examples, served):
    assert pred.shape == image.shape[:2]
    np.testing.assert_array_equal(pred, evaluated[name], err_msg=name)
