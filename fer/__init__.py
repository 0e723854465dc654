"""Facial emotion recognition: the paper's Mini-Xception on FER2013, tracked in MLflow."""

import math
import os
from pathlib import Path

# Canonical order: the numeric labels of the paper's Table 1.
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# The product's emotions: FER2013's seven, then the eighth that the FER+ crowd votes add. A model's classes are
# the first `num_classes` of these (a FER2013 model has seven, a FER+ model all eight).
EMOTIONS = (*LABELS, "contempt")

# The name under which every trained model is registered in the MLflow Model Registry.
REGISTERED_MODEL = "fer-emotion"

__version__ = "0.1.0"


def parse_bool(s: str) -> bool:
    """A true/false flag's value on the command line (true, yes, on, 1 / false, no, off, 0)."""
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {s!r}")


# A container's CPU quota: cgroup v2's "QUOTA PERIOD" (or "max PERIOD"), then cgroup v1's two files
CPU_QUOTA_FILES = (
    ("/sys/fs/cgroup/cpu.max",),
    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)


def usable_cores(quota_files=None) -> int:
    """The cores this process can keep busy: those it may run on (`taskset`, a container's cpuset), fewer where a
    container's CPU quota allows less (Docker's `--cpus`, hosted Spaces): `os.cpu_count()` counts the host's."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    for files in quota_files or CPU_QUOTA_FILES:
        try:
            fields = " ".join(Path(f).read_text() for f in files).split()
            quota, period = fields[0], int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
        if quota not in ("max", "-1") and period > 0:
            cores = min(cores, max(1, math.ceil(int(quota) / period)))
        break
    return max(1, cores)
