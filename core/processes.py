"""Whether a process on this machine is still alive (pruning the embedded server's handle list,
finding Dagster runs orphaned by a kill)."""

import psutil


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (killed, not yet reaped) counts as dead."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but not ours to inspect
        return True
