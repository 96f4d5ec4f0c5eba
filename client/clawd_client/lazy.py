"""Modules loaded at their first use, for the CLI's subcommand modules.

The keyring and the ssh_config resolver cost tens of milliseconds at import, and every `clawd`
command (`clawd status` too) builds the whole parser, so the modules that register subcommands
bind them through `lazy_module` instead of importing them.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


def lazy_module(name: str) -> Any:
    """The module, loaded at its first attribute access (one module object for everyone)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader  # module.__spec__ is spec: the module loads itself at first use
    sys.modules[name] = module  # one module object: a later plain import gets this one
    loader.exec_module(module)
    return module


__all__ = ["lazy_module"]
