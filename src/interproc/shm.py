"""Named shared memory (classic method 3: named file mappings).

See docs/shm.md.  ``SharedMemory.create/open/create_or_open`` give handles
with ``buf``, ``view()``, ``ndarray()``, ``created``, ``size``, ``close()``
and ``unlink()``.
"""

from ._shm import SharedMemory as SharedMemory

__all__ = ["SharedMemory"]
