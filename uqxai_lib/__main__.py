"""``python -m uqxai_lib`` is the notebook runner (same as ``python -m uqxai_lib.run``)."""
import sys

from uqxai_lib.run import main

if __name__ == "__main__":
    sys.exit(main())
