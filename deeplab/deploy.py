"""`python -m deeplab deploy`: push an export's SavedModel to serving, checked by a request.

The SavedModel of --export_path becomes the next version of
`<serving_base_path>/<model_name>/<version>/` (deeplab/serving/push.py: complete or absent,
versions only go up, idempotent by --push_id, retention of --keep_versions). Before the
version becomes visible, it is loaded from the serving location and sent TF Serving's REST
predict body for each check image (encoded bytes and uint8 pixels); its predictions must equal
the evaluation path's for the checkpoint (deeplab/serving/request_check.py). A difference
exits 2 and leaves the previous version the newest.

Exit codes: 0 pushed (or already pushed by this push id); 2 bad input or a failed request
check; 75 another push holds the model folder; anything else transient.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Optional

from deeplab import storage
from deeplab.cli_flags import ParsedFlags
from deeplab.config.deploy import DeployConfig
from deeplab.contract import NAME_PATTERN
from deeplab.errors import UserInputError
from deeplab.export import EXPORT_RESULT

log = logging.getLogger(__name__)


def default_push_id(export_result_text: str) -> str:
  return "export-" + hashlib.sha256(export_result_text.encode()).hexdigest()[:16]


def _read_export(export_path: str) -> tuple:
  uri = storage.join(export_path.rstrip("/"), EXPORT_RESULT)
  if not storage.exists(uri):
    raise UserInputError(f"{uri} does not exist: --export_path must be a folder written by "
                         "`python -m deeplab export` (it ends with export_result.json)")
  text = storage.read_text(uri)
  doc = storage.read_json(uri)
  missing = [k for k in ("saved_model", "checkpoint", "inference_policy") if k not in doc]
  if missing:
    raise UserInputError(f"{uri} lacks {', '.join(missing)}: re-export with this version")
  return doc, text


def deploy(cfg: DeployConfig) -> dict:
  """Pushes and checks; returns the result JSON's content.

  Raises:
    UserInputError: bad settings, an export that is not one, or a failed request check.
  """
  from deeplab import export, run_config
  from deeplab.evaluation import input_size
  from deeplab.exporting import self_check
  from deeplab.serving import push, request_check
  from deeplab.storage import checkpoints

  doc, text = _read_export(cfg.export_path)
  checkpoint = cfg.checkpoint_path or doc["checkpoint"]
  run_cfg, cfg_uri = run_config.load_run_config(checkpoint, cfg.config_json or None,
                                                required=True)
  policy = input_size.policy_from_recorded(run_cfg.model, doc["inference_policy"])
  images, source, _ = export.check_images(cfg.dataset_dir, cfg.check_split, cfg.num_check_images)
  if not images:
    images = self_check.synthetic_images(policy.crop_size or export.SYNTHETIC_SIZE,
                                         cfg.num_check_images)
  model_dir = storage.join(cfg.serving_base_path.rstrip("/"), cfg.model_name)
  push_id = cfg.push_id or default_push_id(text)
  report: dict = {}

  def check(folder: str) -> None:
    start = time.monotonic()
    reference = self_check.reference_predictions(policy, checkpoints.stage_checkpoint(checkpoint),
                                                 images)
    report.update(request_check.check_version(folder, reference, images), source=source,
                  checkpoint=checkpoint, seconds=round(time.monotonic() - start, 3))
    if not report["passed"]:
      served = push.newest(model_dir)
      raise UserInputError(
          f"request check failed for {cfg.export_path} against checkpoint {checkpoint}: "
          + "; ".join(report["failures"] or ["no image could be checked"])
          + f". Nothing was pushed; the newest version of {model_dir} stays "
          + (str(served) if served else "absent")
          + ". Deploy the export of the checkpoint evaluation scored, or re-export it.")

  start = time.monotonic()
  result = push.push(storage.join(cfg.export_path.rstrip("/"), doc["saved_model"]), model_dir,
                     push_id, keep=cfg.keep_versions, protect=cfg.protect_versions, check=check,
                     record={"model_name": cfg.model_name, "export_path": cfg.export_path,
                             "checkpoint": checkpoint, "config_json": cfg_uri})
  out = {"model_name": cfg.model_name, "model_dir": model_dir, "push_id": push_id,
         "export_path": cfg.export_path, "checkpoint": checkpoint, **result.to_dict(),
         "push_seconds": round(time.monotonic() - start, 3)}
  out["request_check"] = report or {
      "passed": True, "skipped": f"push {push_id} already wrote version {result.version}, "
                                 "checked before it was published"}
  log.info("%s version %d of %s (previous %s; removed %s); request check %s",
           "found" if result.reused else "pushed", result.version, model_dir, result.previous,
           list(result.removed) or "none", "passed" if out["request_check"]["passed"] else "failed")
  return out


def _validate(cfg: DeployConfig) -> None:
  for name in ("export_path", "serving_base_path", "model_name"):
    if not getattr(cfg, name):
      raise UserInputError(f"--{name} is required")
  if not re.match(NAME_PATTERN, cfg.model_name):
    raise UserInputError(f"--model_name={cfg.model_name!r} must match {NAME_PATTERN} (it "
                         "becomes a folder name)")
  if cfg.keep_versions < 0:
    raise UserInputError(f"--keep_versions must be >= 0 (0 keeps all), got {cfg.keep_versions}")
  if cfg.num_check_images < 1:
    raise UserInputError("--num_check_images must be >= 1: a deploy is always checked")


def main(parsed: ParsedFlags) -> int:
  cfg = parsed.settings(DeployConfig)
  _validate(cfg)
  result = deploy(cfg)
  result_json: Optional[str] = parsed.values["result_json"]
  if result_json:
    storage.write_json(result_json, result)
  return 0
