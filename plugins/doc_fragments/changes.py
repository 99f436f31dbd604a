# Copyright: kafka-metal contributors
# Apache License 2.0
"""Shared documentation of modules that change state with full check mode and diff support."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Reports what would change without changing anything.
  diff_mode:
    support: full
    description: Shows the state before and after.
author:
  - kafka-metal maintainers (@kafka-metal)
"""
