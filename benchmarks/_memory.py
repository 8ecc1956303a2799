"""Peak memory of the current process, as benchmarks report it."""

import resource


def peak_rss_mb() -> float:
  """This process's own peak resident set size in MB.

  Linux's VmHWM, not getrusage's ru_maxrss: ru_maxrss survives fork and exec, so a child
  started by a large parent reports the parent's peak (a bench child spawned by an 800 MB
  parent printed 813 MB against a VmHWM of 14 MB).
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
