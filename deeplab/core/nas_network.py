"""NAS backbones: PNASNet-5 (``nas_pnasnet``) and Auto-DeepLab (``nas_hnasnet``).

Ports the original ``research/deeplab/core/nas_network.py`` and ``nas_genotypes.py`` (late
2020): a three-conv stem (``conv0``..``conv2`` with ``conv0_bn``..``conv2_bn``), then twelve
cells ``cell_<i>`` of one genotype whose spatial level follows a ``backbone`` path (0..3 for
output stride 4..32): a step down strides the cell and doubles its filters, a step up
resizes the input by two and halves them. Optionally (``nas_use_classification_head``) the
ImageNet head: ``downsample_os<N>_conv``/``_bn`` down to stride 32, then
``classification_head_conv``/``_bn`` (2048 channels).

* PNASNet: one cell genotype; its path is fixed by the output stride (8, 16 or 32).
* Auto-DeepLab: the searched path ``HNASNET_BACKBONE`` ends at stride 8 whatever the
  requested output stride, so without the classification head it only runs at 8
  (ModelConfig refuses the rest).

References: Liu et al., "Progressive Neural Architecture Search", ECCV 2018; Liu et al.,
"Auto-DeepLab: Hierarchical Neural Architecture Search for Semantic Image Segmentation",
CVPR 2019.
"""

from __future__ import annotations

from typing import Sequence

from deeplab.compat import slim, tf
from deeplab.config.model import NAS_HEAD_OUTPUT_STRIDES, NAS_OUTPUT_STRIDES
from deeplab.core import resnet_utils
from deeplab.core.layers import resize_bilinear, scale_dimension
from deeplab.core.nas_cell import NASBaseCell, spatial_size
from deeplab.errors import ConfigError

FILTER_SCALING_RATE = 2.0  # filters grow by this when the resolution halves
DEFAULT_TOTAL_TRAINING_STEPS = 500000

# Genotypes: two operations per new hidden state and the state each one reads.
PNAS_OPERATIONS = ("separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
                   "separable_5x5_2", "separable_3x3_2", "separable_3x3_2", "max_pool_3x3",
                   "separable_3x3_2", "none")
PNAS_HIDDENSTATE_INDICES = (1, 1, 0, 0, 0, 0, 4, 0, 1, 0)
HNAS_OPERATIONS = ("atrous_5x5", "separable_3x3_2", "separable_3x3_2", "atrous_3x3",
                   "separable_3x3_2", "separable_3x3_2", "separable_5x5_2", "separable_5x5_2",
                   "separable_5x5_2", "atrous_5x5")
HNAS_HIDDENSTATE_INDICES = (1, 0, 1, 0, 3, 1, 4, 2, 3, 5)
USED_HIDDENSTATES = (1, 1, 0, 0, 0, 0, 0)  # both genotypes: the two inputs stay out

# Spatial level of each cell (level L is output stride 2 ** (L + 2)).
PNAS_BACKBONES = {8: (1,) * 12, 16: (1,) * 4 + (2,) * 8, 32: (1,) * 4 + (2,) * 4 + (3,) * 4}
HNASNET_BACKBONE = (0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1)
HNASNET_OUTPUT_STRIDE = NAS_OUTPUT_STRIDES["nas_hnasnet"][0]
_HEAD_FILTERS = {8: 256, 16: 512, 32: 1024}  # classification head width per stride


def nas_arg_scope(weight_decay: float = 4e-5, batch_norm_decay: float = 0.9997,
                  batch_norm_epsilon: float = 0.001):
  """Convs without activation or bias (each is followed by its own named batch norm)."""
  with slim.arg_scope([slim.fully_connected, slim.conv2d, slim.separable_conv2d],
                      weights_regularizer=slim.l2_regularizer(weight_decay),
                      weights_initializer=slim.variance_scaling_initializer(
                          factor=1 / 3.0, mode="FAN_IN", uniform=True)), \
      slim.arg_scope([slim.fully_connected], activation_fn=None, scope="FC"), \
      slim.arg_scope([slim.conv2d, slim.separable_conv2d], activation_fn=None,
                     biases_initializer=None), \
      slim.arg_scope([slim.batch_norm], decay=batch_norm_decay, epsilon=batch_norm_epsilon,
                     scale=True) as sc:
    return sc


def _stem(images):
  """Stride-4 stem; also returns [conv1's output (stride 2), conv2's output (stride 4)]."""
  net = resnet_utils.conv2d_same(images, 64, 3, stride=2, scope="conv0")
  net = tf.nn.relu(slim.batch_norm(net, scope="conv0_bn"))
  net = resnet_utils.conv2d_same(net, 64, 3, stride=1, scope="conv1")
  net = slim.batch_norm(net, scope="conv1_bn")
  outputs = [net]
  net = resnet_utils.conv2d_same(tf.nn.relu(net), 128, 3, stride=2, scope="conv2")
  net = slim.batch_norm(net, scope="conv2_bn")
  outputs.append(net)
  return net, outputs


def _upsample(net):
  """Doubles the resolution the DeepLab way: (size - 1) * 2 + 1."""
  size = [scale_dimension(spatial_size(net, 1), 2), scale_dimension(spatial_size(net, 2), 2)]
  if not all(isinstance(s, int) for s in size):
    size = tf.stack(size)
  return resize_bilinear(net, size, net.dtype)


def _classification_head(net, backbone: Sequence[int], output_stride: int, end_points: dict):
  """Strided (then atrous) 3x3 convs to stride 32 width, then a 1x1 conv to 2048."""
  scale = 2 + backbone[-1]
  current = 2 ** scale
  if output_stride % current:
    raise ConfigError(f"output_stride {output_stride} must be a multiple of the NAS "
                      f"backbone's stride {current} with nas_use_classification_head")
  remaining, rate = output_stride // current, 1
  for i in range(5 - scale):
    target = 2 ** (scale + 1 + i)
    scope = f"downsample_os{target}"
    if remaining != 1:
      stride, remaining = 2, remaining // 2
    else:
      stride, rate = 1, rate * 2
    net = resnet_utils.conv2d_same(net, _HEAD_FILTERS[target], 3, stride=stride, rate=rate,
                                   scope=scope + "_conv")
    net = slim.batch_norm(net, scope=scope + "_bn")
    end_points[scope] = net
    net = tf.nn.relu(net)
  net = slim.conv2d(net, 2048, 1, scope="classification_head_conv")
  net = slim.batch_norm(net, scope="classification_head_bn")
  end_points["classification_head"] = net
  return tf.nn.relu(net)


def _build(images, cell: NASBaseCell, backbone: Sequence[int], output_stride: int,
           nas_use_classification_head: bool, nas_remove_os32_stride: bool, reuse, scope: str):
  with tf.variable_scope(scope, "nas", [images], reuse=reuse):
    end_points = {}
    net, cell_outputs = _stem(images)
    end_points["Stem"] = net
    filter_scaling = 1.0
    for cell_num, level in enumerate(backbone):
      previous = backbone[cell_num - 1] if cell_num else 0
      stride = 1
      if level == previous + 1:
        filter_scaling *= FILTER_SCALING_RATE
        stride = 1 if (level == 3 and nas_remove_os32_stride) else 2
      elif level == previous - 1:
        filter_scaling /= FILTER_SCALING_RATE
        if not (previous == 3 and nas_remove_os32_stride):
          net = _upsample(net)
      net = cell(net, scope=f"cell_{cell_num}", filter_scaling=filter_scaling, stride=stride,
                 prev_layer=cell_outputs[-2], cell_num=cell_num)
      end_points[f"Cell_{cell_num}"] = net
      cell_outputs.append(net)
    net = tf.nn.relu(net)
    if nas_use_classification_head:
      net = _classification_head(net, backbone, output_stride, end_points)
    return net, end_points


def _network(images, operations, hiddenstate_indices, backbone, is_training: bool,
             output_stride: int, nas_stem_output_num_conv_filters: int,
             nas_use_classification_head: bool, nas_remove_os32_stride: bool,
             drop_path_keep_prob: float, total_training_steps: int, reuse, scope: str):
  cell = NASBaseCell(nas_stem_output_num_conv_filters, operations, USED_HIDDENSTATES,
                     hiddenstate_indices, drop_path_keep_prob if is_training else 1.0,
                     len(backbone), total_training_steps)
  with slim.arg_scope([slim.dropout, slim.batch_norm], is_training=is_training):
    return _build(images, cell, backbone, output_stride, nas_use_classification_head,
                  nas_remove_os32_stride, reuse, scope)


def pnasnet(images, is_training: bool = True, output_stride: int = 16,
            nas_stem_output_num_conv_filters: int = 20, nas_use_classification_head=False,
            nas_remove_os32_stride: bool = False, drop_path_keep_prob: float = 1.0,
            total_training_steps: int = DEFAULT_TOTAL_TRAINING_STEPS, reuse=None,
            scope: str = "pnasnet"):
  """PNASNet-5 features at `output_stride` (8, 16 or 32) and its end points."""
  if output_stride not in PNAS_BACKBONES:
    raise ConfigError(f"nas_pnasnet runs at output_stride 8, 16 or 32, got {output_stride}")
  return _network(images, PNAS_OPERATIONS, PNAS_HIDDENSTATE_INDICES,
                  PNAS_BACKBONES[output_stride], is_training, output_stride,
                  nas_stem_output_num_conv_filters, nas_use_classification_head,
                  nas_remove_os32_stride, drop_path_keep_prob, total_training_steps, reuse,
                  scope)


def hnasnet(images, is_training: bool = True, output_stride: int = HNASNET_OUTPUT_STRIDE,
            nas_stem_output_num_conv_filters: int = 20, nas_use_classification_head=False,
            nas_remove_os32_stride: bool = False, drop_path_keep_prob: float = 1.0,
            total_training_steps: int = DEFAULT_TOTAL_TRAINING_STEPS, reuse=None,
            scope: str = "hnasnet"):
  """Auto-DeepLab features (stride 8, or `output_stride` with the classification head)."""
  allowed = (NAS_HEAD_OUTPUT_STRIDES if nas_use_classification_head
             else NAS_OUTPUT_STRIDES)["nas_hnasnet"]
  if output_stride not in allowed:
    raise ConfigError(f"nas_hnasnet's searched backbone ends at output stride "
                      f"{HNASNET_OUTPUT_STRIDE}; set --output_stride={HNASNET_OUTPUT_STRIDE} "
                      f"(got {output_stride})")
  return _network(images, HNAS_OPERATIONS, HNAS_HIDDENSTATE_INDICES, HNASNET_BACKBONE,
                  is_training, output_stride, nas_stem_output_num_conv_filters,
                  nas_use_classification_head, nas_remove_os32_stride, drop_path_keep_prob,
                  total_training_steps, reuse, scope)
