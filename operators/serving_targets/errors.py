"""How a serving target fails: permanently (a retry cannot help) or transiently."""


class TargetError(RuntimeError):
  """Bad settings, a missing or unsuitable object, access denied: the task fails, no retry."""


class TargetNotReady(RuntimeError):
  """The server did not become ready in time: the task fails and is retried."""
