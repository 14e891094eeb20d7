"""Child processes that end with the process that started them."""

from __future__ import annotations

import signal
import sys


def stop_with_parent() -> None:
    """In the child before exec: when its parent dies, even by SIGKILL, the child is sent SIGTERM
    and stops gracefully, instead of running on unwatched."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
