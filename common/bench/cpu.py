"""What this CPU can do, read from ``/proc/cpuinfo``: its flags, and whether a half-precision dtype is native.

The peers pick their build from these flags (Optimum's ``AutoQuantizationConfig.<cpu>``), the benchmark skips
emulated half precision with them, and every speed claim names them.
"""
from __future__ import annotations

from pathlib import Path


def cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


# The CPU flags that give torch a native kernel for each half-precision dtype (oneDNN); without one of them
# torch emulates the dtype through fp32 conversions, at a fraction of fp32's speed (analysis/RESULTS.md).
NATIVE_HALF_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def half_skip_reason(dtype: str, device: str, cpuinfo: str) -> str | None:
    """Why a ``dtype`` variant is not worth timing on ``device`` (None: measure it): a CPU that reports none of
    the dtype's native flags. An unreadable cpuinfo (no flags line) measures it."""
    if dtype not in NATIVE_HALF_FLAGS or not device.startswith("cpu"):
        return None
    flags = cpu_flags(cpuinfo)
    if not flags or flags & set(NATIVE_HALF_FLAGS[dtype]):
        return None
    return (f"skipped: this CPU has no native {dtype} ({' or '.join(NATIVE_HALF_FLAGS[dtype])}), so torch emulates "
            f"it at a fraction of fp32's speed; pass --half-on-cpu (make: HALF_ON_CPU=1) to measure it anyway")


def read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
