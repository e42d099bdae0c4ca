"""The asyncio runtime: client connections, sessions, the request pipeline."""
