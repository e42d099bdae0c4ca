"""The ensemble view: every member's mode, zxid and lag behind the leader.

Any member can draw it: the ``server.N`` lines name every member's client address,
and each member answers ``srvr`` there (ZooKeeper enables ``srvr`` by default).  Lag is
the leader's zxid minus the member's, counted only within one epoch (a member still in
an older epoch is "behind an epoch", not a number).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...server.config import ServerConfig

__all__ = ["ensemble_view", "parse_srvr", "srvr"]

SRVR_TIMEOUT = 2.0


async def srvr(host: str, port: int, timeout: float = SRVR_TIMEOUT) -> str:
    """The text a member answers to ``srvr``."""

    async def ask() -> str:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(b"srvr")
            await writer.drain()
            chunks = []
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode("utf-8", "replace")
        finally:
            writer.close()

    return await asyncio.wait_for(ask(), timeout)


def parse_srvr(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if key == "Mode":
            out["mode"] = value
        elif key == "Zxid":
            try:
                out["zxid"] = int(value, 16)
            except ValueError:
                pass
        elif key == "Zookeeper version":
            out["version"] = value
        elif key == "Connections":
            out["connections"] = int(value) if value.isdigit() else value
        elif key == "Node count":
            out["nodeCount"] = int(value) if value.isdigit() else value
        elif key == "Latency min/avg/max":
            out["latency"] = value
    if "mode" not in out and "not currently serving" in text:
        out["mode"] = "not serving"
    return out


def _members(config: ServerConfig, me: tuple[str, int]) -> list[dict[str, Any]]:
    if not config.servers:
        return [{"id": config.server_id, "role": "standalone", "host": me[0], "port": me[1],
                 "self": True}]
    members = []
    for sid, spec in sorted(config.servers.items()):
        host, port = spec.client_host, spec.client_port
        if sid == config.server_id:
            host, port = me
        if host in (None, "", "0.0.0.0", "::"):
            host = spec.host
        members.append({"id": sid, "role": spec.role, "host": host, "port": port,
                        "self": sid == config.server_id})
    return members


async def ensemble_view(config: ServerConfig, me: tuple[str, int]) -> dict[str, Any]:
    """{"members": [...], "leader": id or None}: each member's mode, zxid, epoch, lag."""
    members = _members(config, me)

    async def probe(m: dict[str, Any]) -> None:
        if m["port"] is None:
            m["error"] = f"server.{m['id']} has no client address (add ;host:port)"
            return
        try:
            m.update(parse_srvr(await srvr(m["host"], m["port"])))
        except (OSError, TimeoutError) as e:
            m["error"] = f"no answer from {m['host']}:{m['port']}: {e or type(e).__name__}"
        if "zxid" in m:
            m["zxidHex"] = f"0x{m['zxid']:x}"
            m["epoch"] = m["zxid"] >> 32
        if "error" not in m and "mode" not in m:
            m["error"] = "srvr answered without a Mode (is srvr allowed by 4lw.commands.whitelist?)"

    await asyncio.gather(*(probe(m) for m in members))
    leaders = [m for m in members if m.get("mode") in ("leader", "standalone")]
    leader = leaders[0] if len(leaders) == 1 else None
    for m in members:
        if leader is None or "zxid" not in m or "zxid" not in leader:
            m["lag"] = None
        elif m["epoch"] != leader["epoch"]:
            m["lag"] = None
            m["lagNote"] = "behind an epoch" if m["epoch"] < leader["epoch"] else "ahead?"
        else:
            m["lag"] = max(0, leader["zxid"] - m["zxid"])
    return {"members": members, "leader": leader["id"] if leader else None,
            "leaders": [m["id"] for m in members if m.get("mode") == "leader"],
            "standalone": not config.servers}
