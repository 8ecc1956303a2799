"""vis: colour-mapped predictions and raw Cityscapes evalId predictions, cropped to each image."""

import os

import numpy as np
from PIL import Image

from deeplab import vis
from deeplab.evaluation import colormap
from tests.deeplab import _eval_kit as kit


def test_vis_cityscapes_raw(tmp_path_factory, tmp_path):
  data, ckpt = kit.shared_run(tmp_path_factory)
  out = tmp_path / "vis"
  code = kit.run_cli(vis, [f"--checkpoint_dir={os.path.dirname(ckpt)}", f"--dataset_dir={data}",
                           f"--vis_logdir={out}", "--colormap_type=cityscapes",
                           "--also_save_raw_predictions", "--vis_split=val"])
  assert code == 0
  names = sorted(os.listdir(out / "segmentation_results"))
  assert names == [f"{i:06d}_{k}.png" for i in range(4) for k in ("image", "prediction")]
  sizes = {(33, 41), (29, 33), (37, 30), (33, 33)}
  got = set()
  city = colormap.create_label_colormap("cityscapes")[:5].tolist()
  for i in range(4):
    image = np.asarray(Image.open(out / "segmentation_results" / f"{i:06d}_image.png"))
    pred = np.asarray(Image.open(out / "segmentation_results" / f"{i:06d}_prediction.png"))
    assert image.shape == pred.shape and image.shape[2] == 3
    got.add(image.shape[:2])
    assert {tuple(c) for c in pred.reshape(-1, 3)} <= {tuple(c) for c in city}
  assert got == sizes  # cropped to [:height, :width]
  raws = sorted(os.listdir(out / "raw_segmentation_results"))
  assert raws == ["img_000.png", "img_001.png", "img_002.png", "img_003.png"]
  raw = np.asarray(Image.open(out / "raw_segmentation_results" / "img_000.png"))
  assert raw.shape == (33, 41)
  assert set(np.unique(raw)) <= {7, 8, 11, 12, 13}  # trainIds 0..4 as Cityscapes evalIds


def _files(folder):
  return {os.path.relpath(os.path.join(root, f), folder): open(os.path.join(root, f), "rb").read()
          for root, _, names in os.walk(folder) for f in names}


def test_two_runs_give_identical_per_image_outputs_in_stored_order(tmp_path_factory, tmp_path):
  """vis and evaluate read a multi-shard split in its stored order: same files on every run."""
  from deeplab import evaluate
  from deeplab.evaluation import split_reader
  _, ckpt = kit.shared_run(tmp_path_factory)
  sizes = ((33, 41), (29, 33), (37, 30), (33, 33), (21, 40))
  # img_000..002 in shard 0, img_003..004 in shard 1: interleaved reading would mix them.
  data = kit.write_dataset(str(tmp_path / "d"), num_classes=kit.SHARED_CLASSES, sizes=sizes,
                           num_shards=2)
  vis_runs, eval_runs = [], []
  for run in ("a", "b"):
    out = tmp_path / f"vis_{run}"
    assert kit.run_cli(vis, [f"--checkpoint_path={ckpt}", f"--dataset_dir={data}",
                             f"--vis_logdir={out}", "--also_save_raw_predictions",
                             "--colormap_type=pascal"]) == 0  # evaluate defines it as None
    vis_runs.append(_files(out))
  for run in ("a", "b"):
    out = tmp_path / f"eval_{run}"
    assert kit.run_cli(evaluate, [f"--checkpoint_path={ckpt}", f"--dataset_dir={data}",
                                  f"--eval_logdir={out}", "--num_overlays=5"]) == 0
    eval_runs.append({k: v for k, v in _files(out).items() if k.startswith("overlays")})
  assert vis_runs[0] == vis_runs[1] and len(vis_runs[0]) == 3 * len(sizes)
  assert eval_runs[0] == eval_runs[1]
  assert sorted(eval_runs[0]) == [f"overlays/{i:06d}_img_{i:03d}.png" for i in range(5)]
  examples = split_reader.read_examples(data, "val", 10, with_label=False)
  assert [name for name, _, _ in examples] == [f"img_{i:03d}" for i in range(5)]
  for i, (name, image, _) in enumerate(examples):
    written = np.asarray(Image.open(tmp_path / "vis_a" / vis.SEMANTIC_DIR / f"{i:06d}_image.png"))
    np.testing.assert_array_equal(written, image, err_msg=f"{i:06d}_image.png is not {name}")
