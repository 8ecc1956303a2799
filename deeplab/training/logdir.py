"""The training log folder: local staging, resume point, atomic upload of checkpoints.

TensorFlow writes checkpoints only to a local folder here (its gs:// plugin does not load on
TF 2.21). For a gs:// train_logdir, training writes into a local staging folder and, after
each save, uploads the new files with the `checkpoint` index last; a reader (or a restarted
training) that follows the index therefore never sees a half-uploaded checkpoint. Locally,
tf.train.Saver writes the data and index files first and then replaces `checkpoint`
atomically, which gives the same guarantee.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from typing import Iterable, Optional

from deeplab import storage
from deeplab.contract import TRAIN_RESULT_JSON  # noqa: F401 - re-exported for the trainer
from deeplab.storage.checkpoints import CHECKPOINT_INDEX, checkpoint_step
from deeplab.compat import tf

log = logging.getLogger("deeplab.train")

CHECKPOINT_BASENAME = "model.ckpt"
CONFIG_JSON = "config.json"
_PATH_RE = re.compile(r'^(all_)?model_checkpoint_paths?:\s*"(.*)"\s*$', re.MULTILINE)


def _index_entries(text: str) -> list:
  """Checkpoint names in a `checkpoint` index, newest first, base names only."""
  latest, all_paths = None, []
  for match in _PATH_RE.finditer(text):
    name = os.path.basename(match.group(2))
    if match.group(1):
      all_paths.append(name)
    else:
      latest = name
  ordered = ([latest] if latest else []) + [p for p in reversed(all_paths) if p != latest]
  return ordered


class TrainLogdir:
  """A train_logdir (local or gs://) and the local folder TensorFlow writes into.

  Args:
    uri: the --train_logdir value.
  """

  def __init__(self, uri: str):
    self.uri = uri.rstrip("/") if storage.is_gcs(uri) else uri
    self.is_gcs = storage.is_gcs(uri)
    if self.is_gcs:
      storage.split_gcs(uri)
      self.local = tempfile.mkdtemp(prefix="deeplab-train-")
    else:
      os.makedirs(uri, exist_ok=True)
      self.local = uri

  # -- resume ------------------------------------------------------------------------------
  def latest_checkpoint(self, skip: Iterable[str] = ()) -> Optional[str]:
    """The newest complete checkpoint as a local prefix (downloaded for gs://), or None.

    Follows the `checkpoint` index (read afresh at each call); if the newest entry is
    incomplete (no .index file, a missing data shard) the previous ones are tried, then any
    other `model.ckpt-<step>` in the folder, newest step first: a crash in the middle of a save,
    or a checkpoint pruned under a resuming job, costs one save interval, not the run.

    Args:
      skip: checkpoint base names not to return (ones that failed to restore).
    """
    index_uri = storage.join(self.uri, CHECKPOINT_INDEX)
    names = _index_entries(storage.read_text(index_uri)) if storage.exists(index_uri) else []
    on_disk = [os.path.basename(u)[:-len(".index")]
               for u in storage.glob(storage.join(self.uri, CHECKPOINT_BASENAME + "-*.index"))]
    names += sorted((n for n in on_disk if n not in names and checkpoint_step(n) is not None),
                    key=checkpoint_step, reverse=True)
    for name in names:
      if name in skip:
        continue
      if self.is_gcs:
        files = storage.glob(storage.join(self.uri, name + ".*"))
        if not any(f.endswith(".index") for f in files):
          continue
        for f in files:
          storage.download_file(f, os.path.join(self.local, f.rsplit("/", 1)[-1]))
        self._write_local_index(name)
      local = os.path.join(self.local, name)
      if os.path.exists(local + ".index") and _readable(local):
        return local
      log.warning("checkpoint %s in %s is incomplete or unreadable; trying an older one",
                  name, self.uri)
    return None

  def _write_local_index(self, name: str) -> None:
    text = f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'
    with open(os.path.join(self.local, CHECKPOINT_INDEX), "w") as f:
      f.write(text)

  # -- files -------------------------------------------------------------------------------
  def uri_of(self, local_path: str) -> str:
    """The final URI of a file or checkpoint prefix written in the local folder."""
    return storage.join(self.uri, os.path.relpath(local_path, self.local))

  def read_json(self, name: str):
    uri = storage.join(self.uri, name)
    return storage.read_json(uri) if storage.exists(uri) else None

  def write_text(self, name: str, text: str) -> None:
    """Writes a small file atomically, locally and (for gs://) remotely at once."""
    storage.write_text(os.path.join(self.local, name), text)
    if self.is_gcs:
      storage.write_text(storage.join(self.uri, name), text)

  def sync(self, keep: Optional[list] = None) -> None:
    """Uploads new files, `checkpoint` last; then deletes remote checkpoints not in keep."""
    if not self.is_gcs:
      return
    storage.sync_dir(self.local, self.uri, commit_last=(CHECKPOINT_INDEX,))
    if keep is None:
      return
    kept = {os.path.basename(k) for k in keep}
    for uri in storage.glob(storage.join(self.uri, CHECKPOINT_BASENAME + "-*")):
      base = uri.rsplit("/", 1)[-1]
      prefix = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", base)
      if prefix not in kept:
        storage.delete(uri)

  def cleanup(self) -> None:
    if self.is_gcs:
      shutil.rmtree(self.local, ignore_errors=True)


def _readable(prefix: str) -> bool:
  try:
    tf.train.load_checkpoint(prefix)
    return True
  except Exception:  # corrupt index or missing data shard
    return False
