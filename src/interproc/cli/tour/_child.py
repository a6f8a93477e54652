"""Entry point of a tour step's second process: ``module:function`` + JSON args."""

import importlib
import json
import sys


def main() -> None:
    target, raw_args = sys.argv[1], sys.argv[2]
    module, _, func = target.partition(":")
    result = getattr(importlib.import_module(module), func)(*json.loads(raw_args))
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
