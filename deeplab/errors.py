"""Exceptions that map to the CLI's exit-code contract (DESIGN.md).

0 done; 2 bad input or configuration (retrying cannot help); 3 the loss became
NaN/inf (retrying cannot help either); anything else is transient.
"""

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NONFINITE_LOSS = 3
# Transient (retried): another live job holds the output folder's lease (EX_TEMPFAIL).
EXIT_FOLDER_BUSY = 75


class UserInputError(ValueError):
  """Bad input or configuration: the message names the value and the fix."""

  exit_code = EXIT_BAD_INPUT


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or inf."""

  exit_code = EXIT_NONFINITE_LOSS
