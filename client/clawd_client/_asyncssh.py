"""asyncssh, imported the one way the project imports it: with cryptography's DSA deprecation silenced.

Why: asyncssh still names `cryptography`'s DSA classes in its module-level type aliases and
signatures, and cryptography 51+ deprecates DSA with a `CryptographyDeprecationWarning` (a
`UserWarning`, so shown by default) on every such attribute access. Importing asyncssh therefore
printed five multi-line warning blocks before the first line of `clawd demo`, `doctor`, `connect`
and `tray` — noise the user can do nothing about (clawd never offers DSA keys or host keys).

What is silenced, exactly: that one category, and only when the warning is attributed to an
asyncssh module (cryptography warns with a stacklevel pointing at the caller, so `module` matches
`asyncssh.crypto.misc`, `asyncssh.crypto.dsa`, ...). Our own code, other libraries and every other
category still warn. The filter must be installed before asyncssh is first imported, which is why
every `import asyncssh` in the packages goes through this module:

    from clawd_client._asyncssh import asyncssh
"""

from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning

#: Which warnings are filtered: asyncssh itself or any of its submodules, and nothing else
#: (`\Z` so that a module merely *starting* with "asyncssh", e.g. `asyncssh_foo`, still warns).
ASYNCSSH_MODULES = r"asyncssh(\..*)?\Z"

warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=ASYNCSSH_MODULES)

import asyncssh  # noqa: E402  (must come after the filter above)

__all__ = ["ASYNCSSH_MODULES", "asyncssh"]
