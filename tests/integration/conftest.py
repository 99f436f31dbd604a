"""Shared test helpers of this directory (such as local_kafka) import by name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
