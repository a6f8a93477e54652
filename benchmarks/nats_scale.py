"""nats:// against tcp:// and pyzmq (see interproc/_bench/nats.py and docs/scale.md).

    PYTHONPATH=src python benchmarks/nats_scale.py [--full]
"""

import sys

from interproc._bench.nats import main

if __name__ == "__main__":
    main(sys.argv)
