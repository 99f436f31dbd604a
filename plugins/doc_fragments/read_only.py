# Copyright: kafka-metal contributors
# Apache License 2.0
"""Shared documentation of modules that only read state (they never change a host)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
author:
  - kafka-metal maintainers (@kafka-metal)
"""
