"""clawd: keeps a laptop connected to a remote OpenClaw gateway, and says which hop is broken."""

from clawd_gateway import __version__

__all__ = ["__version__"]
