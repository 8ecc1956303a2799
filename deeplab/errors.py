"""Exceptions that map to the CLI's exit codes (deeplab.contract)."""

from deeplab.contract import EXIT_BAD_INPUT, EXIT_NONFINITE_LOSS


class UserInputError(ValueError):
  """Bad input or configuration: the message names the value and the fix (exit 2)."""

  exit_code = EXIT_BAD_INPUT


class ConfigError(UserInputError):
  """One or more settings are invalid; the message lists every problem (exit 2)."""


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or inf (exit 3)."""

  exit_code = EXIT_NONFINITE_LOSS
