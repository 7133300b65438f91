"""Resource sampling at a fixed rate: CPU %, RSS, GPU memory and utilisation -> CSV.

    with ResourceMonitor("outputs/metrics/monitor/base.csv", interval=0.5) as mon:
        run_something()
    mon.summary()  # {"peak_rss_mb": ..., "gpu_mem_peak_mb": None, "gpu_status": "no GPU (...)"}

A background thread samples one process and, by default, its children (a command run under
``python -m analysis.monitoring.monitor`` is a child). GPU numbers come from NVML (``pynvml``,
shipped by ``nvidia-ml-py``) and are device-wide (NVML attributes utilisation to devices, not
processes). Without a GPU or driver the GPU columns stay empty and ``gpu_status`` says why -
never an exception. The CSV is written to a temporary sibling and renamed when sampling
stops, so a killed run leaves no file that looks complete.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

COLUMNS = ("timestamp", "elapsed_s", "cpu_percent", "rss_mb", "gpu_mem_mb", "gpu_util_percent")


class GpuProbe:
    """NVML device-wide memory used (MiB, summed over devices) and utilisation (%, max over devices)."""

    def __init__(self, device_indices: list[int] | None = None):
        self.handles: list = []
        self.names: list[str] = []
        self.status = "no GPU"
        self._nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            indices = range(count) if device_indices is None else [i for i in device_indices if i < count]
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
            self.names = [_text(pynvml.nvmlDeviceGetName(h)) for h in self.handles]
            self._nvml = pynvml
            self.status = f"{len(self.handles)} GPU(s): {', '.join(self.names)}" if self.handles else "no GPU (NVML sees no device)"
        except ImportError:
            self.status = "no GPU (pynvml from nvidia-ml-py is not installed)"
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no GPU here
            self.status = f"no GPU ({type(exc).__name__}: {str(exc)[:120] or 'NVML unavailable'})"
            self.handles = []

    @property
    def available(self) -> bool:
        return bool(self.handles)

    def read(self) -> tuple[float | None, float | None]:
        if not self.handles:
            return None, None
        try:
            memory = sum(self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles) / 2**20
            util = max(float(self._nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self.handles)
            return memory, util
        except Exception as exc:  # a device that vanished mid-run: stop reading it, keep sampling the CPU
            self.status = f"GPU reading failed ({type(exc).__name__}); GPU columns empty from here on"
            self.handles = []
            return None, None

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ResourceMonitor:
    """Sample ``pid`` (default: this process) and its children every ``interval`` seconds.

    Use as a context manager or with ``start()``/``stop()``. ``output`` (optional) is the CSV;
    rows are also kept in ``self.rows`` for :meth:`summary`.
    """

    def __init__(self, output: str | os.PathLike | None = None, interval: float = 0.5, pid: int | None = None,
                 include_children: bool = True, gpu: GpuProbe | None = None):
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.output = Path(output) if output else None
        self.interval = float(interval)
        self.pid = pid or os.getpid()
        self.include_children = include_children
        self.gpu = gpu if gpu is not None else GpuProbe()
        self.rows: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._processes: dict[int, psutil.Process] = {}
        self._fh = None
        self._writer = None
        self._tmp: Path | None = None
        self._start_time = 0.0

    # -- sampling
    def _tree(self) -> list[psutil.Process]:
        try:
            root = self._processes.setdefault(self.pid, psutil.Process(self.pid))
            procs = [root]
            if self.include_children:
                for child in root.children(recursive=True):
                    procs.append(self._processes.setdefault(child.pid, child))
            return procs
        except psutil.Error:
            return []

    def sample(self) -> dict | None:
        """One row (also appended to the CSV); None once the sampled process has exited."""
        cpu, rss, alive = 0.0, 0.0, False
        for proc in self._tree():
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(interval=None)
                    rss += proc.memory_info().rss
                alive = alive or proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:  # exited between listing and reading
                continue
        if not alive:
            return None
        gpu_mem, gpu_util = self.gpu.read()
        now = time.time()
        row = {"timestamp": round(now, 3), "elapsed_s": round(now - self._start_time, 3),
               "cpu_percent": round(cpu, 1), "rss_mb": round(rss / 2**20, 1),
               "gpu_mem_mb": "" if gpu_mem is None else round(gpu_mem, 1),
               "gpu_util_percent": "" if gpu_util is None else round(gpu_util, 1)}
        self.rows.append(row)
        if self._writer is not None:
            self._writer.writerow(row)
            self._fh.flush()
        return row

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.sample()
            next_tick += self.interval
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    # -- lifecycle
    def start(self) -> "ResourceMonitor":
        self._start_time = time.time()
        if self.output is not None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = self.output.with_name(f".{self.output.name}.tmp-{os.getpid()}")
            self._fh = open(self._tmp, "w", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=COLUMNS)
            self._writer.writeheader()
        self._tree()  # prime cpu_percent (its first call always returns 0.0)
        for proc in list(self._processes.values()):
            with contextlib.suppress(psutil.Error):
                proc.cpu_percent(interval=None)
        self._thread = threading.Thread(target=self._run, name="resource-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self, keep: bool = True) -> dict:
        """Stop sampling (one last sample), close and publish the CSV; returns :meth:`summary`."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()
        if self._fh is not None:
            self._fh.close()
            self._fh, self._writer = None, None
            if keep:
                os.replace(self._tmp, self.output)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._tmp)
        self.gpu.close()
        return self.summary()

    def __enter__(self) -> "ResourceMonitor":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        # The samples up to a failure are still worth keeping.
        self.stop(keep=True)

    # -- results
    def summary(self) -> dict:
        rows = self.rows
        gpu_mem = [r["gpu_mem_mb"] for r in rows if r["gpu_mem_mb"] != ""]
        gpu_util = [r["gpu_util_percent"] for r in rows if r["gpu_util_percent"] != ""]
        cpu = [r["cpu_percent"] for r in rows]
        return {
            "samples": len(rows),
            "interval_s": self.interval,
            "duration_s": rows[-1]["elapsed_s"] if rows else 0.0,
            "peak_rss_mb": max((r["rss_mb"] for r in rows), default=None),
            "cpu_percent_mean": sum(cpu) / len(cpu) if cpu else None,
            "cpu_percent_peak": max(cpu, default=None),
            "gpu": self.gpu.names or None,
            "gpu_status": self.gpu.status,
            "gpu_mem_peak_mb": max(gpu_mem) if gpu_mem else None,
            "gpu_util_mean_percent": sum(gpu_util) / len(gpu_util) if gpu_util else None,
            "gpu_util_peak_percent": max(gpu_util) if gpu_util else None,
            "csv": str(self.output) if self.output else None,
        }


def monitor_command(command: list[str], output: str | os.PathLike, interval: float = 0.5) -> tuple[int, dict]:
    """Run ``command`` as a child process under a :class:`ResourceMonitor`; returns (exit code, summary)."""
    import subprocess

    if not command:
        raise ValueError("no command to monitor")
    try:
        child = subprocess.Popen(command)
    except FileNotFoundError:
        from common.cli import UserError

        raise UserError(f"Command {command[0]!r} was not found; check the part after `--`.") from None
    monitor = ResourceMonitor(output, interval=interval, pid=child.pid).start()
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.terminate()
        code = child.wait()
    finally:
        summary = monitor.stop(keep=True)
    return code, summary


def run_monitored(command: list[str], env: dict, monitor=None, cwd: Path | None = None) -> tuple[int, dict | None]:
    """Run ``command`` to its end with ``monitor`` (a ResourceMonitor) sampling it: (exit code, usage)."""
    # stderr is inherited: the worker's progress bars and logs show live.
    child = subprocess.Popen(command, env=env, cwd=cwd)
    if monitor is not None:
        monitor.pid = child.pid
        monitor.start()
    try:
        code = child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        usage = monitor.stop(keep=True) if monitor is not None else None
    return code, usage
