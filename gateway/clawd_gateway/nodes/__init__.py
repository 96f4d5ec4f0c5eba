"""Device nodes: pairing store (persisted), invoke router (pure), and the asyncio hub that joins them
to live connections. See hub.py for the pairing policy."""

from .hub import NodeHub
from .router import InvokeRouter, RouterError
from .store import PairingState, load_state, save_state

__all__ = ["InvokeRouter", "NodeHub", "PairingState", "RouterError", "load_state", "save_state"]
