"""Writes the expected checkpoint variables of the original DeepLab's models, one JSON per case.

Written by hand from reading tensorflow/models research/deeplab (model.py, common.py,
core/feature_extractor.py, core/resnet_v1_beta.py, core/dense_prediction_cell.py,
core/nas_network.py, core/nas_cell.py, core/nas_genotypes.py) and
research/slim/nets/mobilenet (mobilenet.py, mobilenet_v3.py, conv_blocks.py) as of late 2020.
It imports nothing from this repository and no TensorFlow: the layout is spelled out from
those sources (scopes, filter counts, which convs carry a bias or a batch norm), so the
tests that compare a built graph with these lists check the port against the original,
not against itself. Run `python tests/testdata/model_variables/original_layout.py` to
rewrite the JSON files next to it.
"""

import json
import pathlib
from typing import Dict, List

Layout = Dict[str, List[int]]
NUM_CLASSES = 19  # Cityscapes, the dataset these variants were published on.
_BN = ("gamma", "beta", "moving_mean", "moving_variance")


def conv(out: Layout, scope: str, k: int, cin: int, cout: int, bn: bool = True,
         bias: bool = False) -> None:
  """A slim conv2d: weights [k, k, in, out], then BatchNorm (scale=True) or biases."""
  out[f"{scope}/weights"] = [k, k, cin, cout]
  if bn:
    for v in _BN:
      out[f"{scope}/BatchNorm/{v}"] = [cout]
  if bias:
    out[f"{scope}/biases"] = [cout]


def depthwise(out: Layout, scope: str, k: int, cin: int, bn: bool = True) -> None:
  """A slim separable_conv2d with num_outputs=None: depthwise_weights [k, k, in, 1]."""
  out[f"{scope}/depthwise_weights"] = [k, k, cin, 1]
  if bn:
    for v in _BN:
      out[f"{scope}/BatchNorm/{v}"] = [cin]


# ---------------------------------------------------------------- ResNet-v1 (resnet_v1_beta.py)

def resnet(variant: str) -> (Layout, int, int):
  """Backbone variables, output channels, channels of the OS-4 decoder end point."""
  depth = int(variant.split("_")[2])
  scope = f"resnet_v1_{depth}"
  out: Layout = {}
  if variant.endswith("_beta"):
    m = 0.25 if depth == 18 else 1.0  # resnet_v1_18_beta: root_depth_multiplier=0.25
    widths = [int(64 * m), int(64 * m), int(128 * m)]
    cin = 3
    for i, w in enumerate(widths, 1):
      conv(out, f"{scope}/conv1_{i}", 3, cin, w)
      cin = w
  else:
    conv(out, f"{scope}/conv1", 7, 3, 64)
    cin = 64
  if depth == 18:
    # lite_bottleneck: conv1 3x3 depth, conv2 3x3 depth, 1x1 shortcut when depth changes.
    blocks = [(64, 2), (128, 2), (256, 2), (512, 2)]
    for b, (d, units) in enumerate(blocks, 1):
      for u in range(1, units + 1):
        unit = f"{scope}/block{b}/unit_{u}/lite_bottleneck_v1"
        if cin != d:
          conv(out, f"{unit}/shortcut", 1, cin, d)
        conv(out, f"{unit}/conv1", 3, cin, d)
        conv(out, f"{unit}/conv2", 3, d, d)
        cin = d
    return out, 512, 64
  block3 = {50: 6, 101: 23}[depth]
  blocks = [(64, 3), (128, 4), (256, block3), (512, 3)]
  for b, (base, units) in enumerate(blocks, 1):
    for u in range(1, units + 1):
      unit = f"{scope}/block{b}/unit_{u}/bottleneck_v1"
      if cin != 4 * base:
        conv(out, f"{unit}/shortcut", 1, cin, 4 * base)
      conv(out, f"{unit}/conv1", 1, cin, base)
      conv(out, f"{unit}/conv2", 3, base, base)
      conv(out, f"{unit}/conv3", 1, base, 4 * base)
      cin = 4 * base
  return out, 2048, 256


# -------------------------------------- MobileNet-v3 (slim mobilenet_v3.py, feature_extractor.py)

def make_divisible(v: float, divisor: int = 8) -> int:
  """slim's mobilenet._make_divisible (min_value = divisor)."""
  new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
  return new_v + divisor if new_v < 0.9 * v else new_v


# slim's V3_LARGE / V3_SMALL spec up to DeepLab's final end point: ("conv", kernel, n) or
# (expansion factor, n, depthwise kernel, squeeze-excite).
V3_LARGE = [("conv", 3, 16), (1, 16, 3, 0), (4, 24, 3, 0), (3, 24, 3, 0), (3, 40, 5, 1),
            (3, 40, 5, 1), (3, 40, 5, 1), (6, 80, 3, 0), (2.5, 80, 3, 0), (184 / 80., 80, 3, 0),
            (184 / 80., 80, 3, 0), (6, 112, 3, 1), (6, 112, 3, 1), (6, 160, 5, 1),
            (6, 160, 5, 1), (6, 160, 5, 1), ("conv", 1, 960)]
V3_SMALL = [("conv", 3, 16), (1, 16, 3, 1), (72. / 16, 24, 3, 0), (88. / 24, 24, 3, 0),
            (4, 40, 5, 1), (6, 40, 5, 1), (6, 40, 5, 1), (3, 48, 5, 1), (3, 48, 5, 1),
            (6, 96, 5, 1), (6, 96, 5, 1), (6, 96, 5, 1), ("conv", 1, 576)]
# feature_extractor.mobilenet_v3_{large,small}_seg: these layers' outputs are halved and
# their expansion factor becomes expansion / (the previous layer's halved outputs).
SEG_CHANGES = {"large": [(13, 336), (14, 480), (15, 480), (16, None)],
               "small": [(9, 144), (10, 288), (11, 288), (12, None)]}


def mobilenet_v3(size: str) -> (Layout, int, Dict[int, int]):
  """Backbone variables, output channels, {layer number: depthwise_output channels}."""
  spec = [list(layer) for layer in (V3_LARGE if size == "large" else V3_SMALL)]
  for index, expansion in SEG_CHANGES[size]:
    n_pos = 2 if spec[index][0] == "conv" else 1
    spec[index][n_pos] = spec[index][n_pos] / 2
    if expansion is not None:
      spec[index][0] = expansion / spec[index - 1][1]
  out: Layout = {}
  cin, block, convs, depthwise_channels = 3, 0, 0, {}
  for number, layer in enumerate(spec, 1):
    if layer[0] == "conv":
      _, k, n = layer
      n = make_divisible(n)
      conv(out, "MobilenetV3/Conv" + (f"_{convs}" if convs else ""), k, cin, n)
      convs += 1
      cin = n
      continue
    ef, n, k, se = layer
    n = make_divisible(n)
    scope = "MobilenetV3/expanded_conv" + (f"_{block}" if block else "")
    inner = make_divisible(cin * ef)
    if inner > cin:
      conv(out, f"{scope}/expand", 1, cin, inner)
    else:
      inner = cin
    depthwise(out, f"{scope}/depthwise", k, inner)
    depthwise_channels[number] = inner
    if se:  # squeeze_excite: two 1x1 convs with biases, no batch norm
      squeeze = make_divisible(inner / 4)
      conv(out, f"{scope}/squeeze_excite/Conv", 1, inner, squeeze, bn=False, bias=True)
      conv(out, f"{scope}/squeeze_excite/Conv_1", 1, squeeze, inner, bn=False, bias=True)
    conv(out, f"{scope}/project", 1, inner, n)
    block += 1
    cin = n
  return out, cin, depthwise_channels


def mobilenet_v3_case(size: str) -> dict:
  """The model zoo's Cityscapes head: SE image pooling, no concat projection, the decoder's
  sum-merge 1x1 convs (biases, no BN) output the logits; there is no logits/ scope."""
  out, channels, depthwise_channels = mobilenet_v3(size)
  aspp_filters = 128
  conv(out, "image_pooling", 1, channels, aspp_filters, bn=False, bias=True)
  conv(out, "aspp0", 1, channels, aspp_filters)
  low_level = depthwise_channels[{"large": 7, "small": 4}[size]]  # the OS-8 end point
  conv(out, "decoder/feature_projection0", 1, low_level, NUM_CLASSES, bn=False, bias=True)
  conv(out, "decoder/decoder_conv0", 1, aspp_filters, NUM_CLASSES, bn=False, bias=True)
  flags = {"model_variant": f"mobilenet_v3_{size}_seg", "output_stride": 32,
           "decoder_output_stride": [8], "add_image_level_feature": True,
           "aspp_convs_filters": 128, "aspp_with_concat_projection": False,
           "aspp_with_squeeze_and_excitation": True, "decoder_use_sum_merge": True,
           "decoder_filters": NUM_CLASSES, "decoder_output_is_logits": True,
           "image_se_uses_qsigmoid": True}
  return {"flags": flags, "num_classes": NUM_CLASSES, "variables": out}


# ------------------------------------------------------------------- Xception-71 (xception.py)

def xception_71() -> (Layout, int, int):
  """Backbone variables, output channels, channels of the OS-4 decoder end point.

  Stem entry_flow/conv1_1 (3x3/2, 32), conv1_2 (3x3, 64); entry flow blocks (depth, stride)
  128/2, 256/1, 256/2, 728/1, 728/2 with conv shortcuts; middle flow 16 'sum' units of 728;
  exit flow block1 [728, 1024, 1024] with a conv shortcut, block2 [1536, 1536, 2048] without.
  Each separable conv is split into _depthwise and _pointwise, each with a batch norm.
  """
  out: Layout = {}
  conv(out, "xception_71/entry_flow/conv1_1", 3, 3, 32)
  conv(out, "xception_71/entry_flow/conv1_2", 3, 32, 64)
  cin = 64
  blocks = [("entry_flow/block1", [128] * 3, 1, True), ("entry_flow/block2", [256] * 3, 1, True),
            ("entry_flow/block3", [256] * 3, 1, True), ("entry_flow/block4", [728] * 3, 1, True),
            ("entry_flow/block5", [728] * 3, 1, True), ("middle_flow/block1", [728] * 3, 16, False),
            ("exit_flow/block1", [728, 1024, 1024], 1, True),
            ("exit_flow/block2", [1536, 1536, 2048], 1, False)]
  for block, depths, units, conv_shortcut in blocks:
    for u in range(1, units + 1):
      module = f"xception_71/{block}/unit_{u}/xception_module"
      if conv_shortcut:
        conv(out, f"{module}/shortcut", 1, cin, depths[-1])
      c = cin
      for i, d in enumerate(depths, 1):
        depthwise(out, f"{module}/separable_conv{i}_depthwise", 3, c)
        conv(out, f"{module}/separable_conv{i}_pointwise", 1, c, d)
        c = d
      cin = depths[-1]
  return out, cin, 256  # OS 4: entry_flow/block3/unit_1 (256)


def dpc_cell(out: Layout, cin: int) -> int:
  """dense_prediction_cell_branch5_top1_cityscapes.json: five split separable 3x3 branches
  (branch0 on the features, the others on earlier branches), concat_projection 1280 -> 256."""
  inputs = [-1, 0, 1, 0, 0]
  for i, source in enumerate(inputs):
    c = cin if source < 0 else 256
    depthwise(out, f"meta_architecture/branch{i}_depthwise", 3, c)
    conv(out, f"meta_architecture/branch{i}_pointwise", 1, c, 256)
  conv(out, "meta_architecture/concat_projection", 1, 256 * len(inputs), 256)
  return 256


def xception_71_dpc_case() -> dict:
  out, channels, low_level = xception_71()
  channels = dpc_cell(out, channels)
  channels = decoder(out, channels, low_level)
  logits(out, channels)
  # The atrous rates are given to show that they build nothing next to a DPC.
  flags = {"model_variant": "xception_71", "output_stride": 16, "atrous_rates": [6, 12, 18],
           "decoder_output_stride": [4],
           "dense_prediction_cell_json": "BUNDLED:dense_prediction_cell_branch5_top1_cityscapes"}
  return {"flags": flags, "num_classes": NUM_CLASSES, "variables": out}


# ------------------------------------- NAS (nas_network.py, nas_cell.py, nas_genotypes.py)

def batch_norm(out: Layout, scope: str, channels: int) -> None:
  """slim.batch_norm(scope=...) called on its own: no BatchNorm/ level in the names."""
  for v in _BN:
    out[f"{scope}/{v}"] = [channels]


# (operations, hiddenstate_indices) of each genotype; both use used_hiddenstates
# [1, 1, 0, 0, 0, 0, 0], so a cell outputs its five new states concatenated.
PNAS_CELL = (["separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
              "separable_5x5_2", "separable_3x3_2", "separable_3x3_2", "max_pool_3x3",
              "separable_3x3_2", "none"], [1, 1, 0, 0, 0, 0, 4, 0, 1, 0])
HNAS_CELL = (["atrous_5x5", "separable_3x3_2", "separable_3x3_2", "atrous_3x3",
              "separable_3x3_2", "separable_3x3_2", "separable_5x5_2", "separable_5x5_2",
              "separable_5x5_2", "atrous_5x5"], [1, 0, 1, 0, 3, 1, 4, 2, 3, 5])
# The level (output stride 4 * 2**level) of each of the twelve cells.
PNAS_PATH = {8: [1] * 12, 16: [1] * 4 + [2] * 8, 32: [1] * 4 + [2] * 4 + [3] * 4}
HNAS_PATH = [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1]


def nas(scope: str, genotype, path, stem_filters: int = 20) -> (Layout, int, Dict[str, int]):
  """Backbone variables, output channels, {end point: channels}.

  Stem: conv0 (3x3/2, 64), conv1 (3x3, 64), conv2 (3x3/2, 128), each with conv<i>_bn; the
  cells get [conv1's output, conv2's output] as their first two 'previous layers'. A cell of
  `f` filters: prev_1x1 + prev_bn on the layer before last when its width is not f, 1x1 +
  beginning_bn on its input; per operation separable convs (depthwise [k, k, f, 1] and
  pointwise [1, 1, f, f], bn_sep_*), an atrous conv ([k, k, f, f], bn_atr_*), nothing for a
  3x3 max pool, and for 'none' a 1x1 + bn_1 only when it is strided (a cell input in a cell
  that goes down a level).
  """
  out: Layout = {}
  conv(out, f"{scope}/conv0", 3, 3, 64, bn=False)
  batch_norm(out, f"{scope}/conv0_bn", 64)
  conv(out, f"{scope}/conv1", 3, 64, 64, bn=False)
  batch_norm(out, f"{scope}/conv1_bn", 64)
  conv(out, f"{scope}/conv2", 3, 64, 128, bn=False)
  batch_norm(out, f"{scope}/conv2_bn", 128)
  widths = [64, 128]  # the outputs cells can read as their 'previous layer'
  ends = {"Stem": 128}
  operations, indices = genotype
  scaling, cin = 1.0, 128
  for number, level in enumerate(path):
    before = path[number - 1] if number else 0
    strided = level == before + 1
    if strided:
      scaling *= 2
    elif level == before - 1:
      scaling /= 2
    f = int(stem_filters * scaling)
    cell = f"{scope}/cell_{number}"
    if widths[-2] != f:
      conv(out, f"{cell}/prev_1x1", 1, widths[-2], f, bn=False)
      batch_norm(out, f"{cell}/prev_bn", f)
    conv(out, f"{cell}/1x1", 1, cin, f, bn=False)
    batch_norm(out, f"{cell}/beginning_bn", f)
    for i in range(len(operations) // 2):
      for side, k in (("left", 2 * i), ("right", 2 * i + 1)):
        where, op = f"{cell}/comb_iter_{i}/{side}", operations[k]
        size = int(op.split("x")[-1].split("_")[0]) if "x" in op else 1
        if op.startswith("separable"):
          for layer in range(1, int(op.split("_")[-1]) + 1):
            name = f"separable_{size}x{size}_{layer}"
            out[f"{where}/{name}/depthwise_weights"] = [size, size, f, 1]
            out[f"{where}/{name}/pointwise_weights"] = [1, 1, f, f]
            batch_norm(out, f"{where}/bn_sep_{size}x{size}_{layer}", f)
        elif op.startswith("atrous"):
          conv(out, f"{where}/atrous_{size}x{size}", size, f, f, bn=False)
          batch_norm(out, f"{where}/bn_atr_{size}x{size}", f)
        elif op == "none" and strided and indices[k] < 2:
          conv(out, f"{where}/1x1", 1, f, f, bn=False)
          batch_norm(out, f"{where}/bn_1", f)
    cin = 5 * f
    widths.append(cin)
    ends[f"Cell_{number}"] = cin
  return out, cin, ends


def nas_case(variant: str) -> dict:
  """The DeepLab v3+ head on a NAS backbone, default nas_* settings (20 stem filters)."""
  if variant == "nas_hnasnet":  # Auto-DeepLab: output stride 8 only, decoder on Cell_2
    out, channels, ends = nas("hnasnet", HNAS_CELL, HNAS_PATH)
    output_stride, rates, low_level = 8, [12, 24, 36], ends["Cell_2"]
  else:  # PNASNet at output stride 16, decoder on the stem
    out, channels, ends = nas("pnasnet", PNAS_CELL, PNAS_PATH[16])
    output_stride, rates, low_level = 16, [6, 12, 18], ends["Stem"]
  channels = aspp_head(out, channels, rates=3)
  channels = decoder(out, channels, low_level)
  logits(out, channels)
  flags = {"model_variant": variant, "output_stride": output_stride, "atrous_rates": rates,
           "decoder_output_stride": [4]}
  return {"flags": flags, "num_classes": NUM_CLASSES, "variables": out}


# ------------------------------------------------------ the DeepLab v3+ head (model.py defaults)

def aspp_head(out: Layout, cin: int, rates: int, depth: int = 256) -> int:
  """image_pooling, aspp0, aspp{i} separable, concat_projection (all BN, no bias)."""
  conv(out, "image_pooling", 1, cin, depth)
  conv(out, "aspp0", 1, cin, depth)
  for i in range(1, rates + 1):
    depthwise(out, f"aspp{i}_depthwise", 3, cin)
    conv(out, f"aspp{i}_pointwise", 1, cin, depth)
  conv(out, "concat_projection", 1, depth * (rates + 2), depth)
  return depth


def decoder(out: Layout, cin: int, low_level: int, depth: int = 256) -> int:
  """feature_projection0 (48), then two separable 3x3 convs of `depth` filters."""
  conv(out, "decoder/feature_projection0", 1, low_level, 48)
  cin = cin + 48
  for i in (0, 1):
    depthwise(out, f"decoder/decoder_conv{i}_depthwise", 3, cin)
    conv(out, f"decoder/decoder_conv{i}_pointwise", 1, cin, depth)
    cin = depth
  return depth


def logits(out: Layout, cin: int) -> None:
  out["logits/semantic/weights"] = [1, 1, cin, NUM_CLASSES]
  out["logits/semantic/biases"] = [NUM_CLASSES]


def resnet_case(variant: str) -> dict:
  out, channels, low_level = resnet(variant)
  channels = aspp_head(out, channels, rates=3)
  channels = decoder(out, channels, low_level)
  logits(out, channels)
  flags = {"model_variant": variant, "output_stride": 16, "atrous_rates": [6, 12, 18],
           "decoder_output_stride": [4]}
  return {"flags": flags, "num_classes": NUM_CLASSES, "variables": out}


def cases() -> Dict[str, dict]:
  found = {}
  for variant in ("resnet_v1_18", "resnet_v1_18_beta", "resnet_v1_50", "resnet_v1_101"):
    found[variant] = resnet_case(variant)
  for size in ("large", "small"):
    found[f"mobilenet_v3_{size}_seg"] = mobilenet_v3_case(size)
  found["xception_71_dpc"] = xception_71_dpc_case()
  for variant in ("nas_hnasnet", "nas_pnasnet"):
    found[variant] = nas_case(variant)
  return found


def main() -> None:
  here = pathlib.Path(__file__).parent
  for name, case in cases().items():
    # One variable per line, so that a diff shows which variable changed.
    rows = ",\n".join(f"  {json.dumps(n)}: {json.dumps(s)}"
                      for n, s in sorted(case["variables"].items()))
    head = json.dumps({k: v for k, v in case.items() if k != "variables"}, sort_keys=True)
    text = head[:-1] + ', "variables": {\n' + rows + "\n}}\n"
    json.loads(text)
    (here / f"{name}.json").write_text(text)


if __name__ == "__main__":
  main()
