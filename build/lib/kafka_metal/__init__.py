"""kafka-metal: controller-side tooling (command line, lab, distribution builder).

The Ansible collection ``metal.kafka`` is the repository root. Logic shared with Ansible
modules lives in ``plugins/module_utils`` and is imported from here through the collection
path ``.collections/ansible_collections/metal/kafka`` (a link to the repository root), so the
command line and the playbooks run the same code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__version__ = "0.1.0"

REPO_ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS_DIR = REPO_ROOT / ".collections"


def ensure_collection_path() -> Path:
    """Make ``ansible_collections.metal.kafka`` importable and return the collections dir."""
    link = COLLECTIONS_DIR / "ansible_collections" / "metal" / "kafka"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(REPO_ROOT, link.parent), link)
    if str(COLLECTIONS_DIR) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_DIR))
    return COLLECTIONS_DIR


ensure_collection_path()
