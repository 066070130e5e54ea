"""Names for the processes of this machine that claim work, and whether they live.

A claim made by a process is tagged ``local:<host>:<pid>:<detail>``. When a process of
this machine is gone, whatever it had claimed can be taken back at once instead of
waiting for a lease to run out.
"""

from __future__ import annotations

import os
import socket


def claimant_prefix() -> str:
    return f"local:{socket.gethostname()}:{os.getpid()}"


def is_dead_local_claimant(claimant: str) -> bool:
    """True for a claimant of this machine whose process no longer exists."""
    parts = claimant.split(":")
    if len(parts) < 4 or parts[0] != "local" or parts[1] != socket.gethostname():
        return False
    try:
        pid = int(parts[2])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
