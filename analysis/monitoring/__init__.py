"""Resource monitoring: ``ResourceMonitor`` (Python) and ``python -m analysis.monitoring.monitor`` (CLI)."""
from common.bench.monitoring import COLUMNS, GpuProbe, ResourceMonitor, monitor_command

__all__ = ["COLUMNS", "GpuProbe", "ResourceMonitor", "monitor_command"]
