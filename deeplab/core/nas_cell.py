"""The NAS cell of PNASNet and Auto-DeepLab (the original ``research/deeplab/core/nas_cell.py``).

A cell turns two inputs (the previous cell's output and the one before it) into
``len(operations) // 2`` new hidden states; each new state is the sum of two operations
('left' and 'right') applied to earlier states. The cell's output concatenates the states
no operation consumed as a cell input (the original's ``used_hiddenstates``), so it has
``(number of unused states) * filters`` channels.

Scopes and the explicitly named batch norms (``prev_1x1``/``prev_bn``, ``1x1``/
``beginning_bn``, ``comb_iter_<i>/{left,right}/separable_<k>x<k>_<n>`` with
``bn_sep_<k>x<k>_<n>``, ``atrous_<k>x<k>`` with ``bn_atr_<k>x<k>``, ``1x1``/``bn_1``) are the
original's, so its checkpoints load by name.
"""

from __future__ import annotations

from typing import Sequence

from deeplab.compat import slim, tf
from deeplab.core.layers import resize_bilinear, scale_dimension


def spatial_size(net, axis: int):
  """A spatial dimension of `net`: static when known, else a scalar tensor."""
  static = net.shape.as_list()[axis]
  return static if static is not None else tf.shape(net)[axis]


def resize_to(net, like):
  """`net` resized to the spatial size of `like` (a no-op when both are static and equal)."""
  sizes = [spatial_size(like, 1), spatial_size(like, 2)]
  if all(isinstance(s, int) for s in sizes) and net.shape.as_list()[1:3] == sizes:
    return net
  if all(isinstance(s, int) for s in sizes):
    return resize_bilinear(net, sizes, net.dtype)
  return resize_bilinear(net, tf.stack(sizes), net.dtype)


def _parse(operation: str):
  """'separable_5x5_2' -> ('separable', 5, 2); 'atrous_3x3' -> ('atrous', 3, 1);
  'max_pool_3x3' -> ('max_pool', 3, 1); 'none' -> ('none', 1, 1)."""
  if operation == "none":
    return "none", 1, 1
  if operation.startswith("separable_"):
    _, size, layers = operation.split("_")
    return "separable", int(size.split("x")[0]), int(layers)
  if operation.startswith("atrous_"):
    return "atrous", int(operation.split("_")[1].split("x")[0]), 1
  if operation in ("max_pool_3x3", "avg_pool_3x3"):
    return operation[:-4], 3, 1
  raise ValueError(f"unknown NAS cell operation {operation!r}; expected separable_<k>x<k>_<n>, "
                   "atrous_<k>x<k>, max_pool_3x3, avg_pool_3x3 or none")


class NASBaseCell:
  """One genotype (operations + which states they read), callable once per cell position.

  Args:
    num_conv_filters: Filters of every conv at filter scaling 1 (the stem's output width).
    operations: Two operations per new hidden state, left then right.
    used_hiddenstates: 1 for each state left out of the cell's output concatenation.
    hiddenstate_indices: The state each operation reads (0: this input, 1: the previous
      input, 2+: new states).
    drop_path_keep_prob: Keep probability of each operation's path at the last cell and the
      end of training (1.0: no drop path).
    total_num_cells: Cells in the network (drop path scales with the cell's depth).
    total_training_steps: Steps over which the drop probability ramps up.
  """

  def __init__(self, num_conv_filters: int, operations: Sequence[str],
               used_hiddenstates: Sequence[int], hiddenstate_indices: Sequence[int],
               drop_path_keep_prob: float, total_num_cells: int, total_training_steps: int):
    if len(hiddenstate_indices) != len(operations) or len(operations) % 2:
      raise ValueError("a NAS cell needs an even number of operations and one hidden-state "
                       f"index per operation; got {len(operations)} operations and "
                       f"{len(hiddenstate_indices)} indices")
    for operation in operations:
      _parse(operation)
    self._num_conv_filters = num_conv_filters
    self._operations = list(operations)
    self._used_hiddenstates = list(used_hiddenstates)
    self._hiddenstate_indices = list(hiddenstate_indices)
    self._drop_path_keep_prob = drop_path_keep_prob
    self._total_num_cells = total_num_cells
    self._total_training_steps = total_training_steps

  def output_channels(self, filter_scaling: float) -> int:
    unused = len(self._used_hiddenstates) - sum(self._used_hiddenstates)
    return unused * int(self._num_conv_filters * filter_scaling)

  def __call__(self, net, scope: str, filter_scaling: float, stride: int, prev_layer,
               cell_num: int):
    filters = int(self._num_conv_filters * filter_scaling)
    with tf.variable_scope(scope):
      states = self._cell_base(net, prev_layer, filters)
      for i in range(len(self._operations) // 2):
        with tf.variable_scope(f"comb_iter_{i}"):
          outputs = []
          for side, k in (("left", 2 * i), ("right", 2 * i + 1)):
            index = self._hiddenstate_indices[k]
            # Only the cell's inputs are strided; new states already have the output size.
            with tf.variable_scope(side):
              outputs.append(self._operation(states[index], self._operations[k],
                                             stride if index < 2 else 1, filters, cell_num))
          with tf.variable_scope("combine"):
            states.append(outputs[0] + outputs[1])
      with tf.variable_scope("cell_output"):
        kept = [h for h, used in zip(states, self._used_hiddenstates) if not used]
        return tf.concat(kept, axis=3)

  def _cell_base(self, net, prev_layer, filters: int) -> list:
    """[1x1 projection of net, prev_layer at net's size and width]."""
    if prev_layer is None:
      prev_layer = net
    else:
      prev_layer = resize_to(prev_layer, net)
      if int(prev_layer.shape[3]) != filters:
        prev_layer = slim.conv2d(tf.nn.relu(prev_layer), filters, 1, scope="prev_1x1")
        prev_layer = slim.batch_norm(prev_layer, scope="prev_bn")
    net = slim.conv2d(tf.nn.relu(net), filters, 1, scope="1x1")
    net = slim.batch_norm(net, scope="beginning_bn")
    return [net, prev_layer]

  def _operation(self, net, operation: str, stride: int, filters: int, cell_num: int):
    kind, size, layers = _parse(operation)
    if kind == "separable":
      for layer in range(1, layers + 1):
        net = slim.separable_conv2d(tf.nn.relu(net), filters, size, depth_multiplier=1,
                                    stride=stride, scope=f"separable_{size}x{size}_{layer}")
        net = slim.batch_norm(net, scope=f"bn_sep_{size}x{size}_{layer}")
        stride = 1
    elif kind == "atrous":
      net = tf.nn.relu(net)
      if stride == 2:  # downsample by resizing, then an ordinary conv
        net = resize_bilinear(net, [scale_dimension(spatial_size(net, 1), 0.5),
                                    scale_dimension(spatial_size(net, 2), 0.5)], net.dtype)
        net = slim.conv2d(net, filters, size, rate=1, scope=f"atrous_{size}x{size}")
      else:
        net = slim.conv2d(net, filters, size, rate=2, scope=f"atrous_{size}x{size}")
      net = slim.batch_norm(net, scope=f"bn_atr_{size}x{size}")
    elif kind == "none":
      if stride > 1 or int(net.shape[3]) != filters:
        net = slim.conv2d(tf.nn.relu(net), filters, 1, stride=stride, scope="1x1")
        net = slim.batch_norm(net, scope="bn_1")
      return net  # identity paths are never dropped
    else:
      pool = slim.max_pool2d if kind == "max_pool" else slim.avg_pool2d
      net = pool(net, size, stride=stride, padding="SAME")
      if int(net.shape[3]) != filters:
        net = slim.conv2d(net, filters, 1, scope="1x1")
        net = slim.batch_norm(net, scope="bn_1")
    return self._drop_path(net, cell_num)

  def _drop_path(self, net, cell_num: int):
    """Zeroes the whole path for random images, more often in deeper cells and later steps."""
    if self._drop_path_keep_prob >= 1.0:
      return net
    depth = (cell_num + 1) / float(self._total_num_cells)
    final_keep = 1.0 - depth * (1.0 - self._drop_path_keep_prob)
    step = tf.cast(tf.train.get_or_create_global_step(), tf.float32)
    progress = tf.minimum(1.0, step / float(self._total_training_steps))
    keep = 1.0 - progress * (1.0 - final_keep)
    noise = tf.random_uniform([tf.shape(net)[0], 1, 1, 1], dtype=tf.float32)
    mask = tf.cast(tf.floor(keep + noise), net.dtype)
    return net * tf.cast(1.0 / keep, net.dtype) * mask
