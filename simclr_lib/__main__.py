"""``python -m simclr_lib train|eval|embed|bench`` (also under ``torchrun -m simclr_lib``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
