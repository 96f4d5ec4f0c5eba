"""The clawd agent: one background process per user that owns every tunnel (see host.py), with a
local control API (protocol.py, server.py) that the CLI and the tray use as clients."""
