"""Entry point of the launchd wrapper (`python -m clawd_gateway.service launch ...`).

Only this entry point knows the CLI; launchd.launch_main gets it as an argument.
"""

from __future__ import annotations

import sys

from ..cli import main
from .launchd import launch_main

if __name__ == "__main__":
    sys.exit(launch_main(sys.argv[1:], main))
