"""The tunnel engine: a pure supervisor state machine and the thin asyncio runner around it."""
