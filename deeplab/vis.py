"""`python -m deeplab vis`: colour-mapped predictions for a split (the original vis.py, one pass).

Writes `<vis_logdir>/segmentation_results/%06d_image.png` and `%06d_prediction.png`, numbered
by the image's index in the split's stored order (every run names the same image alike), and
with --also_save_raw_predictions `raw_segmentation_results/<image basename>.png` (class ids; for
Cityscapes mapped from trainId to evalId as the original). Predictions are cropped to each
image's `[:height, :width]`. Model settings come from the run's config.json.
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Sequence, Tuple

import numpy as np
from absl import flags
from PIL import Image

from deeplab import flag_util, model_flags, run_config, storage
from deeplab.evaluation import colormap, eval_pass
from deeplab.config import ModelConfig
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)
FLAGS = flags.FLAGS
SEMANTIC_DIR = "segmentation_results"
RAW_DIR = "raw_segmentation_results"


def define_flags() -> None:
  d = flag_util.define
  d(flags.DEFINE_string, "master", "", "Unused; accepted for compatibility.")
  d(flags.DEFINE_string, "vis_logdir", None, "Where the images go (or gs://).")
  d(flags.DEFINE_string, "checkpoint_dir", None, "train_logdir: its latest checkpoint is used.")
  d(flags.DEFINE_string, "checkpoint_path", None, "A model.ckpt-N prefix (wins).")
  d(flags.DEFINE_string, "config_json", None, "The run's config.json (default: next to it)")
  d(flags.DEFINE_integer, "vis_batch_size", 1, "Images per batch.")
  d(flags.DEFINE_list, "vis_crop_size", None,
    "Crop 'height,width'; default: smallest output_stride*k+1 fitting the split's largest image.")
  d(flags.DEFINE_integer, "eval_interval_secs", 300, "Unused: vis is one pass.")
  d(flags.DEFINE_multi_float, "eval_scales", [1.0], "Scales for multi-scale inference.")
  d(flags.DEFINE_boolean, "add_flipped_images", False, "Also average left-right flipped inputs.")
  d(flags.DEFINE_integer, "quantize_delay_step", -1, "Quantisation is not supported (must be -1).")
  d(flags.DEFINE_string, "dataset", "pascal_voc_seg", "Dataset name (used without a manifest).")
  d(flags.DEFINE_string, "vis_split", "val", "Split to visualise.")
  d(flags.DEFINE_string, "dataset_dir", None, "Folder (or gs://) with the TFRecords.")
  d(flags.DEFINE_enum, "colormap_type", "pascal", list(colormap.COLORMAPS), "Colormap.")
  d(flags.DEFINE_boolean, "also_save_raw_predictions", False, "Also write class-id PNGs.")
  d(flags.DEFINE_integer, "max_number_of_iterations", 0, "Accepted; vis is always one pass.")
  d(flags.DEFINE_string, "result_json", None, "Where to write a small JSON summary.")
  model_flags.define_model_flags()


define_flags()


def save_png(array: np.ndarray, path: str) -> None:
  Image.fromarray(np.asarray(array).astype(np.uint8)).save(path, format="PNG")


def raw_prediction(prediction: np.ndarray, colormap_type: str) -> np.ndarray:
  """Class ids to store; Cityscapes trainIds become evalIds (the original vis.py rule)."""
  if colormap_type == colormap.CITYSCAPES:
    return colormap.convert_train_id_to_eval_id(prediction)
  return prediction


def visualize(dataset_dir: str, split: str, checkpoint: str, vis_logdir: str,
              model_cfg: ModelConfig, crop_size: Optional[Tuple[int, int]] = None,
              batch_size: int = 1, scales: Sequence[float] = (1.0,),
              add_flipped_images: bool = False, colormap_type: str = colormap.PASCAL,
              also_save_raw_predictions: bool = False, dataset: Optional[str] = None) -> dict:
  """One pass over `split` writing colour-mapped (and raw) predictions; returns a summary."""
  from deeplab.datasets.descriptors import get_dataset_info

  info = get_dataset_info(dataset_dir, dataset)
  info.num_examples(split)
  local_data = eval_pass.stage_split(dataset_dir, split)
  crop = crop_size or eval_pass.choose_crop_size(info, split, local_data, model_cfg)
  graph = eval_pass.EvalGraph(local_data, split, batch_size, model_cfg, crop, scales,
                              add_flipped_images, info.ignore_label)
  b = graph.batch
  fetch = {"pred": graph.predictions, "image": b["original_image"], "name": b["image_name"],
           "height": b["height"], "width": b["width"]}
  resized = bool(model_cfg.min_resize_value or model_cfg.max_resize_value)
  count = 0
  with storage.output_dir(vis_logdir, commit_last=()) as out:
    os.makedirs(os.path.join(out, SEMANTIC_DIR), exist_ok=True)
    if also_save_raw_predictions:
      os.makedirs(os.path.join(out, RAW_DIR), exist_ok=True)
    with graph.session(run_config.stage_checkpoint(checkpoint)) as sess:
      while True:
        batch = eval_pass.run_batch(sess, fetch)
        if batch is None:
          break
        for i in range(len(batch["pred"])):
          h, w = int(batch["height"][i]), int(batch["width"][i])
          pred = batch["pred"][i]
          if resized:
            # The prediction covers the resized image: slice it, then back to the original size.
            image = batch["image"][i]
            pred = pred[:image.shape[0], :image.shape[1]]
            pred = np.asarray(Image.fromarray(pred.astype(np.int32)).resize((w, h), Image.NEAREST))
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
          else:
            image = batch["image"][i][:h, :w]
          pred = pred[:h, :w]
          stem = os.path.join(out, SEMANTIC_DIR, "%06d" % count)
          save_png(image, stem + "_image.png")
          save_png(colormap.label_to_color_image(pred, colormap_type), stem + "_prediction.png")
          if also_save_raw_predictions:
            name = os.path.basename(batch["name"][i].decode("utf-8", "replace")) or "%06d" % count
            save_png(raw_prediction(pred, colormap_type), os.path.join(out, RAW_DIR, name + ".png"))
          count += 1
    log.info("visualised %d images into %s", count, vis_logdir)
  return {"vis_logdir": vis_logdir, "num_images": count, "checkpoint": checkpoint,
          "checkpoint_step": run_config.checkpoint_step(checkpoint),
          "segmentation_results": storage.join(vis_logdir, SEMANTIC_DIR)}


def main(argv: Sequence[str]) -> int:
  del argv
  for name in ("vis_logdir", "dataset_dir"):
    if not getattr(FLAGS, name):
      raise UserInputError(f"--{name} is required")
  if FLAGS.quantize_delay_step >= 0:
    raise UserInputError("--quantize_delay_step is not supported; leave it at -1")
  resize = FLAGS.min_resize_value or FLAGS.max_resize_value
  checkpoint, _, model_cfg, _ = eval_pass.resolve_run(
      FLAGS, FLAGS.checkpoint_dir, FLAGS.checkpoint_path, FLAGS.dataset_dir, FLAGS.dataset,
      FLAGS.config_json)
  if (resize or model_cfg.min_resize_value or model_cfg.max_resize_value) \
      and FLAGS.vis_batch_size != 1:
    raise UserInputError("with min/max_resize_value, --vis_batch_size must be 1 (as the original)")
  summary = visualize(
      FLAGS.dataset_dir, FLAGS.vis_split, checkpoint, FLAGS.vis_logdir, model_cfg,
      crop_size=run_config.parse_crop_size(FLAGS.vis_crop_size, "vis_crop_size"),
      batch_size=FLAGS.vis_batch_size, scales=tuple(FLAGS.eval_scales),
      add_flipped_images=FLAGS.add_flipped_images, colormap_type=FLAGS.colormap_type,
      also_save_raw_predictions=FLAGS.also_save_raw_predictions, dataset=FLAGS.dataset)
  if FLAGS.result_json:
    storage.write_json(FLAGS.result_json, summary)
  return 0
