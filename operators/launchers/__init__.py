"""Where a `python -m deeplab` job runs: a local process group or a Kubernetes pod."""

from operators.launchers.base import JobResult, Launcher, make_launcher

__all__ = ["JobResult", "Launcher", "make_launcher"]
