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
