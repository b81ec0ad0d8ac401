"""Write ``igc/models/counts.json``, the zoo's counts that ``igc models`` reads without torch
(a maintainer's tool, not installed).

    python scripts/count_models.py

Every registered network is built and counted (:func:`igc.analysis.zoo.table_entry`, the
counts ``igc models --no-cache`` shows). Run it after changing a network, a layer, the
counter or ``paper_results.toml``; ``tests/test_zoo_counts.py`` fails until the table is
equal to the built networks again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from igc.analysis.zoo import TABLE_PATH, table_entry  # noqa: E402
from igc.files.atomic import atomic_write  # noqa: E402
from igc.models.registry import list_models  # noqa: E402

ABOUT = ("The counts igc models shows, one entry per network of the zoo; written by "
         "scripts/count_models.py, kept equal to the built networks by "
         "tests/test_zoo_counts.py. Do not edit.")


def main() -> int:
    """Count every network and write the table; prints how many."""
    names = list_models()
    data = {"about": ABOUT, "models": {name: table_entry(name) for name in names}}
    atomic_write(TABLE_PATH, json.dumps(data, indent=1) + "\n", "count table")
    print(f"{len(names)} networks counted into {TABLE_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
