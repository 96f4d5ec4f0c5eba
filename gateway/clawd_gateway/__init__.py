"""clawd-gateway: an OpenClaw-compatible gateway that is small, fast and secure by default."""

__version__ = "0.1.0"
