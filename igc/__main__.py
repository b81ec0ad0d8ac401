"""``python -m igc`` (and ``torchrun -m igc``) runs the command line."""

import sys

from igc.cli import main

sys.exit(main())
