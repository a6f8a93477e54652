"""The operating-system layer: every OS-specific call lives behind this module.

Only Linux is implemented and tested; a macOS or Windows backend is another
module with the same functions, picked here, without touching the public API.
"""

import sys

if sys.platform.startswith("linux"):
    from ._linux import (
        SHM_DIR as SHM_DIR,
        PeerCredentials as PeerCredentials,
        ProcessId as ProcessId,
        current_process as current_process,
        is_alive as is_alive,
        peer_credentials as peer_credentials,
        shm_path as shm_path,
        socket_owner as socket_owner,
        unix_listeners as unix_listeners,
    )
    from ._linux_files import (
        hold_owner_lock as hold_owner_lock,
        make_anonymous_file as make_anonymous_file,
        owner_alive as owner_alive,
        publish_file as publish_file,
    )
else:  # pragma: no cover - no other backend exists yet
    raise ImportError(f"interproc has no backend for {sys.platform!r} yet (Linux only)")
