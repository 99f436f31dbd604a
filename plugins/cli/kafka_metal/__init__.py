"""kafka-metal: controller-side tooling (command line, lab, distribution builder).

The command line drives the Ansible collection ``metal.kafka`` and imports its ``plugins/module_utils``,
so the command line and the playbooks run the same code. The collection is found in one of two places:

- a source checkout: the repository root is the collection (``plugins/cli/kafka_metal`` is this package);
  ``.collections/ansible_collections/metal/kafka`` links to it, for Ansible and for imports;
- an installed wheel (``pip install kafka-metal``): the collection is installed beside this package, as
  ``ansible_collections/metal/kafka`` in site-packages, or anywhere on ``ANSIBLE_COLLECTIONS_PATH`` or
  Ansible's default collection paths.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__version__ = "0.1.0"

_HERE = Path(__file__).resolve().parent


class CollectionNotFound(RuntimeError):
    """The metal.kafka collection is nowhere to be found; the message says how to install it."""


def _source_checkout():
    root = _HERE.parents[2]
    if (root / "galaxy.yml").is_file() and root / "plugins" / "cli" / "kafka_metal" == _HERE:
        return root
    return None


def _collection_search_path():
    paths = [Path(p) for p in sys.path if p]
    for var in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        paths += [Path(p).expanduser() for p in os.environ.get(var, "").split(os.pathsep) if p]
    paths += [Path("~/.ansible/collections").expanduser(), Path("/usr/share/ansible/collections")]
    return paths


def _installed_collection():
    for base in _collection_search_path():
        candidate = base / "ansible_collections" / "metal" / "kafka"
        if (candidate / "galaxy.yml").is_file() or (candidate / "MANIFEST.json").is_file():
            return candidate.resolve()
    return None


_CHECKOUT = _source_checkout()
# The collection's root: the repository in a source checkout, the installed collection otherwise
# (None when neither is found; collection_root() then says how to install it).
COLLECTION_ROOT = _CHECKOUT or _installed_collection()
# Kept under its older name for the lab tests and tools that run from a checkout.
REPO_ROOT = COLLECTION_ROOT


def collection_root() -> Path:
    if COLLECTION_ROOT is None:
        raise CollectionNotFound(
            "the Ansible collection metal.kafka is not installed: install kafka-metal with pip (the wheel "
            "carries it), or install the collection with ansible-galaxy and put its path in "
            "ANSIBLE_COLLECTIONS_PATH")
    return COLLECTION_ROOT


def ensure_collection_path() -> Path:
    """Make ``ansible_collections.metal.kafka`` importable and return the directory that holds
    ``ansible_collections`` (for ANSIBLE_COLLECTIONS_PATH). In a checkout, the link under ``.collections``
    is made when missing."""
    root = collection_root()
    if _CHECKOUT is not None:
        base = _CHECKOUT / ".collections"
        link = base / "ansible_collections" / "metal" / "kafka"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()
            os.symlink(os.path.relpath(root, link.parent), link)
    else:
        base = root.parents[2]
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    return base


if COLLECTION_ROOT is not None:
    ensure_collection_path()
