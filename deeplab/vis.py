"""`python -m deeplab vis`: colour-mapped predictions for a split (the original vis.py, one pass).

Writes `<vis_logdir>/segmentation_results/%06d_image.png` and `%06d_prediction.png`, numbered
in reading order (the split's stored order at --vis_batch_size 1; larger batches group images
by size), and with --also_save_raw_predictions `raw_segmentation_results/<image basename>.png`
(class ids; for Cityscapes mapped from trainId to evalId as the original). Images and
predictions are at the original size, under evaluate's inference policy
(deeplab/evaluation/input_size.py). Model settings come from the run's config.json.
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from deeplab import run_config, storage
from deeplab.storage import checkpoints
from deeplab.cli_flags import ParsedFlags
from deeplab.config import ModelConfig
from deeplab.config.commands import IgnoredVisFlags
from deeplab.config.io import raise_problems
from deeplab.config.stages import VisConfig
from deeplab.evaluation import colormap, eval_pass
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)
SEMANTIC_DIR = "segmentation_results"
RAW_DIR = "raw_segmentation_results"


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
              also_save_raw_predictions: bool = False, dataset: Optional[str] = None,
              inference_max_size: Optional[int] = None) -> dict:
  """One pass over `split` writing colour-mapped (and raw) predictions; returns a summary.

  The inference policy is evaluate's for the same settings (input_size.make_policy), so vis
  shows what evaluation scored; images and predictions are written at the original size.
  """
  from deeplab.datasets.descriptors import get_dataset_info
  from deeplab.evaluation import input_size

  info = get_dataset_info(dataset_dir, dataset)
  info.num_examples(split)
  local_data = eval_pass.stage_split(dataset_dir, split)
  policy = input_size.make_policy(model_cfg, crop_size, inference_max_size, scales,
                                  add_flipped_images)
  log.info("inference policy: %s", policy.describe())
  graph = eval_pass.EvalGraph(local_data, split, batch_size, policy, info.ignore_label)
  b = graph.batch
  fetch = {"pred": graph.predictions, "image": b["original_image"], "name": b["image_name"],
           "height": b["height"], "width": b["width"]}
  count = 0
  with storage.output_dir(vis_logdir, commit_last=()) as out:
    os.makedirs(os.path.join(out, SEMANTIC_DIR), exist_ok=True)
    if also_save_raw_predictions:
      os.makedirs(os.path.join(out, RAW_DIR), exist_ok=True)
    with graph.session(checkpoints.stage_checkpoint(checkpoint)) as sess:
      while True:
        batch = eval_pass.run_batch(sess, fetch)
        if batch is None:
          break
        for i in range(len(batch["pred"])):
          h, w = int(batch["height"][i]), int(batch["width"][i])
          pred, image = batch["pred"][i][:h, :w], batch["image"][i][:h, :w]
          stem = os.path.join(out, SEMANTIC_DIR, "%06d" % count)
          save_png(image, stem + "_image.png")
          save_png(colormap.label_to_color_image(pred, colormap_type), stem + "_prediction.png")
          if also_save_raw_predictions:
            name = os.path.basename(batch["name"][i].decode("utf-8", "replace")) or "%06d" % count
            save_png(raw_prediction(pred, colormap_type), os.path.join(out, RAW_DIR, name + ".png"))
          count += 1
    log.info("visualised %d images into %s", count, vis_logdir)
  return {"vis_logdir": vis_logdir, "num_images": count, "checkpoint": checkpoint,
          "checkpoint_step": checkpoints.checkpoint_step(checkpoint),
          "segmentation_results": storage.join(vis_logdir, SEMANTIC_DIR)}


def output_folder(parsed: ParsedFlags) -> Optional[str]:
  """The folder this command writes (the CLI holds its lease while it runs)."""
  return parsed.values["vis_logdir"]


def main(parsed: ParsedFlags) -> int:
  cfg = parsed.settings(VisConfig)
  for name in ("vis_logdir", "dataset_dir"):
    if not getattr(cfg, name):
      raise UserInputError(f"--{name} is required")
  if cfg.vis_batch_size < 1:
    raise UserInputError(f"--vis_batch_size must be >= 1, got {cfg.vis_batch_size}")
  checkpoint, _, model_cfg, _ = eval_pass.resolve_run(cfg, parsed.settings(ModelConfig))
  summary = visualize(
      cfg.dataset_dir, cfg.vis_split, checkpoint, cfg.vis_logdir, model_cfg,
      crop_size=run_config.parse_crop_size(cfg.vis_crop_size, "vis_crop_size"),
      batch_size=cfg.vis_batch_size, scales=cfg.eval_scales,
      add_flipped_images=cfg.add_flipped_images, colormap_type=cfg.colormap_type,
      also_save_raw_predictions=cfg.also_save_raw_predictions, dataset=cfg.dataset,
      inference_max_size=cfg.inference_max_size)
  result_json = parsed.values["result_json"]
  if result_json:
    storage.write_json(result_json, summary)
  return 0
