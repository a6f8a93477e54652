"""Named shared memory (classic method 3: named file mappings) and publish/subscribe.

See docs/shm.md and docs/pubsub.md.  ``SharedMemory.create/open/create_or_open``
give handles with ``buf``, ``view()``, ``ndarray()``, ``created``, ``size``,
``close()`` and ``unlink()``.  ``Publisher`` / ``Subscriber`` are the
one-to-many form: fixed slots, zero-copy loans, history for late joiners.
"""

from ._pubsub import Loan as Loan, Publisher as Publisher, Sample as Sample, Subscriber as Subscriber
from ._shm import SharedMemory as SharedMemory

__all__ = ["Loan", "Publisher", "Sample", "SharedMemory", "Subscriber"]
