"""Stand-in for get-pip.py, the pip bootstrap that ansible-test downloads from a host of its own, which a
machine that reaches only its package index cannot fetch (ansible-test says to save the script by hand at
~/.ansible/test/cache/get_pip_<version>.py; .ci/sanity puts this file there).

Run as get-pip.py is, with pip's install options and the packages to install: pip comes from the
interpreter's own ensurepip, then pip installs the requested packages (the pinned pip among them) from the
index the machine's pip configuration names."""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

ensurepip.bootstrap()
# ensurepip hides the machine's pip configuration from itself and leaves that in the environment
for name in ("PIP_CONFIG_FILE", "ENSUREPIP_OPTIONS"):
    os.environ.pop(name, None)
options = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *options]))
