"""Whether a process still runs: how a lock or a temporary folder named after its owner's process id is known to be
left behind by a run that was killed (and may be taken over or removed)."""

import os


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: no signal sent, only the check
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
