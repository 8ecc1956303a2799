"""The four pipeline stages as operators; each names the flags its command requires."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from operators.base import DeepLabCommandOperator, _is_templated


def _positive_int(value: Any, what: str) -> None:
  if not _is_templated(value) and not (isinstance(value, int) and value >= 1):
    raise ValueError(f"{what} must be an integer >= 1, got {value!r}")


class BuildTFRecordsOperator(DeepLabCommandOperator):
  """`python -m deeplab build-tfrecords`: converts a dataset into shards + manifest.json.

  :param format: voc, cityscapes, ade20k, folder or synthetic (templated).
  :param source: the raw dataset, local path or gs:// URI (templated).
  :param output_dir: where the shards and manifest.json go (templated).
  """

  command = "build-tfrecords"
  template_fields = (*DeepLabCommandOperator.template_fields, "format", "source", "output_dir")

  def __init__(self, *, format: str, source: Optional[str], output_dir: str, **kwargs):
    super().__init__(**kwargs)
    self.format = format
    self.source = source
    self.output_dir = output_dir

  def command_flags(self) -> dict:
    return {**super().command_flags(), "format": self.format, "source": self.source or None,
            "output_dir": self.output_dir}

  def num_gpus(self) -> int:
    return 0  # conversion is CPU work


class DeepLabTrainOperator(DeepLabCommandOperator):
  """`python -m deeplab train`: multi-clone training, one clone per GPU.

  :param dataset_dir: the converted dataset (templated).
  :param train_logdir: checkpoints, events, config.json, train_result.json (templated).
  :param num_clones: clones = GPUs requested from Kubernetes (templated).
  """

  command = "train"
  template_fields = (*DeepLabCommandOperator.template_fields, "dataset_dir", "train_logdir",
                     "num_clones")
  ui_color = "#fce8e6"

  def __init__(self, *, dataset_dir: str, train_logdir: str, num_clones: Any = 1, **kwargs):
    super().__init__(**kwargs)
    self.dataset_dir = dataset_dir
    self.train_logdir = train_logdir
    self.num_clones = num_clones
    _positive_int(num_clones, "num_clones")

  def command_flags(self) -> dict:
    return {**super().command_flags(), "dataset_dir": self.dataset_dir,
            "train_logdir": self.train_logdir, "num_clones": int(self.num_clones)}

  def num_gpus(self) -> int:
    return int(self.num_clones)


class DeepLabEvalOperator(DeepLabCommandOperator):
  """`python -m deeplab evaluate`: one pass over a split; metrics.json and a report.

  :param dataset_dir: the converted dataset (templated).
  :param checkpoint_dir: the training run's logdir; its latest checkpoint is evaluated (templated).
  :param eval_logdir: metrics.json, report.md, PNGs (templated).
  """

  command = "evaluate"
  template_fields = (*DeepLabCommandOperator.template_fields, "dataset_dir", "checkpoint_dir",
                     "eval_logdir")

  def __init__(self, *, dataset_dir: str, checkpoint_dir: str, eval_logdir: str, **kwargs):
    super().__init__(**kwargs)
    self.dataset_dir = dataset_dir
    self.checkpoint_dir = checkpoint_dir
    self.eval_logdir = eval_logdir

  def command_flags(self) -> dict:
    return {**super().command_flags(), "dataset_dir": self.dataset_dir,
            "checkpoint_dir": self.checkpoint_dir, "eval_logdir": self.eval_logdir}


class DeepLabExportOperator(DeepLabCommandOperator):
  """`python -m deeplab export`: frozen graph + SavedModel from the run's config.json.

  :param checkpoint_path: a model.ckpt-N prefix or a training logdir (templated).
  :param export_path: the export folder (templated).
  :param eval_metrics_json: evaluate's metrics.json; the export then uses exactly the input
      size settings that evaluation scored with. Empty: export's own defaults (templated).
  """

  command = "export"
  template_fields = (*DeepLabCommandOperator.template_fields, "checkpoint_path", "export_path",
                     "eval_metrics_json")

  def __init__(self, *, checkpoint_path: str, export_path: str,
               eval_metrics_json: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    self.checkpoint_path = checkpoint_path
    self.export_path = export_path
    self.eval_metrics_json = eval_metrics_json

  def command_flags(self) -> dict:
    metrics = str(self.eval_metrics_json or "").strip()
    return {**super().command_flags(), "checkpoint_path": self.checkpoint_path,
            "export_path": self.export_path,
            # An XCom that rendered to nothing leaves the flag out (export's defaults apply).
            "eval_metrics_json": metrics if metrics not in ("", "None") else None}
