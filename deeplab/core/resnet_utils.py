"""Building blocks shared by the ResNet-style backbones (Xception, ResNet-v1 beta).

The block/unit machinery is tf-slim's own `tf_slim.nets.resnet_utils`, the module
the original DeepLab imported as `tensorflow.contrib.slim.nets.resnet_utils`:
re-using it keeps the scope layout ('<block>/unit_<i>') and the atrous handling of
output_stride identical to the checkpoints'. What this module adds is input
checking with messages that say which value is wrong and how to fix it, instead of
the original "The target output_stride cannot be reached.".
"""

import numbers
from typing import List, Optional, Sequence, Tuple

from tf_slim.nets.resnet_utils import Block, conv2d_same, stack_blocks_dense, subsample

from deeplab.errors import UserInputError

__all__ = [
    "Block",
    "conv2d_same",
    "stack_blocks_dense",
    "subsample",
    "valid_output_strides",
    "check_output_stride",
    "check_multi_grid",
]

DEFAULT_MULTI_GRID = (1, 1, 1)


def valid_output_strides(root_stride: int, blocks: Sequence[Block]) -> List[int]:
  """Output strides a network can produce: the root stride times each prefix of unit strides.

  Args:
    root_stride: Stride of the layers run before the blocks (e.g. 2 for Xception).
    blocks: The network's blocks.

  Returns:
    The reachable output strides, ascending, without duplicates.
  """
  strides = {root_stride}
  current = root_stride
  for block in blocks:
    for unit in block.args:
      current *= unit.get("stride", 1)
      strides.add(current)
  return sorted(strides)


def check_output_stride(output_stride: Optional[int], root_stride: int,
                        blocks: Sequence[Block], network: str) -> None:
  """Raises UserInputError when `output_stride` cannot be produced by the network.

  Args:
    output_stride: Requested ratio of input to output resolution, or None (nominal).
    root_stride: Stride of the layers run before the blocks.
    blocks: The network's blocks.
    network: Network name used in the message.

  Raises:
    UserInputError: The stride is not one of `valid_output_strides`.
  """
  if output_stride is None:
    return
  valid = valid_output_strides(root_stride, blocks)
  if output_stride not in valid:
    raise UserInputError(
        f"output_stride {output_stride!r} cannot be produced by {network}; "
        f"it must be one of {valid} (DeepLab uses 8 or 16). Fix --output_stride.")


def check_multi_grid(multi_grid: Optional[Sequence[int]], network: str,
                     units: int = 3) -> Tuple[int, ...]:
  """Validates multi_grid and returns it as a tuple (all ones for None).

  Args:
    multi_grid: Atrous rate multipliers of the last block's units, or None.
    network: Network name used in the message.
    units: Units in the last block (3; 2 for ResNet-18).

  Returns:
    `units` positive integers.

  Raises:
    UserInputError: Not `units` positive integers.
  """
  if multi_grid is None:
    return DEFAULT_MULTI_GRID[:1] * units
  grid = tuple(multi_grid)
  if len(grid) != units or any(not isinstance(r, numbers.Integral) or isinstance(r, bool)
                               or r < 1 for r in grid):
    example = ",".join(str(2 ** i) for i in range(units))
    raise UserInputError(
        f"multi_grid for {network} must be {units} positive integers, one per unit of the "
        f"last block (e.g. {example}), got {list(grid)}. Fix --multi_grid.")
  return tuple(int(r) for r in grid)
