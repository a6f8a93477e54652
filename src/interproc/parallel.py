"""Parallel ports (Linux ppdev, ``/dev/parportN``).

    import interproc.parallel as parallel

    with parallel.open(0) as lpt:          # /dev/parport0, claimed
        lpt.write_data(0x55)
        if lpt.read_status() & parallel.STATUS_BUSY: ...
        lpt.write_control(parallel.CONTROL_STROBE)

The hardware path is UNTESTED (no parallel port where this was built); see
docs/serial.md for what is and is not tested.
"""

from ._parallel import (
    CONTROL_AUTOFD as CONTROL_AUTOFD,
    CONTROL_INIT as CONTROL_INIT,
    CONTROL_SELECT as CONTROL_SELECT,
    CONTROL_STROBE as CONTROL_STROBE,
    STATUS_ACK as STATUS_ACK,
    STATUS_BUSY as STATUS_BUSY,
    STATUS_ERROR as STATUS_ERROR,
    STATUS_PAPEROUT as STATUS_PAPEROUT,
    STATUS_SELECT as STATUS_SELECT,
    ParallelPort as ParallelPort,
    open as open,
    ports as ports,
)

__all__ = [
    "CONTROL_AUTOFD",
    "CONTROL_INIT",
    "CONTROL_SELECT",
    "CONTROL_STROBE",
    "ParallelPort",
    "STATUS_ACK",
    "STATUS_BUSY",
    "STATUS_ERROR",
    "STATUS_PAPEROUT",
    "STATUS_SELECT",
    "open",
    "ports",
]
