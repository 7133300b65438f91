"""Measuring variants: the benchmark (``run`` drives one ``worker`` process per variant, ``timing`` is
the loop, ``summary`` the outputs), the peers users would pick instead (``peers``), this CPU's facts
(``cpu``), evaluation, resource monitoring, static properties and third-party interop. Layer 4.
"""

# The modules other packages may import (tests/test_import_graph.py checks it).
__all__ = ['cpu', 'evaluation', 'interop', 'monitoring', 'peer_script', 'peers', 'properties', 'run', 'summary', 'timing', 'worker']
