"""ClickHouse Keeper's writes in an ensemble: replicated like any write, replayed after a
whole-ensemble restart (RemoveRecursive is one multi txn of deletes in the log)."""

from __future__ import annotations

from zabby.client import SyncClient
from zabby.testing import ZabbyEnsemble


def test_remove_recursive_on_leader_is_seen_on_follower_and_survives_restart(tmp_path):
    with ZabbyEnsemble(tmp_path, 3, tickTime=200,
                       **{"zabby.keeperExtensions": "true"}) as ens:
        leader = ens.leader()
        follower = ens.followers()[0]
        with SyncClient(ens.member_hosts(leader), timeout=10) as zl:
            for p in ("/t", "/t/a", "/t/a/b", "/t/c", "/keep"):
                zl.create(p, b"x")
            assert zl.create_if_not_exists("/t/c") == "/t/c"
            zl.remove_recursive("/t")
            assert zl.create_if_not_exists("/made", b"m") == "/made"
        # a client on a follower, writing through it (forwarded to the leader)
        with SyncClient(ens.member_hosts(follower), timeout=10) as zf:
            zf.sync("/")
            assert zf.exists("/t") is None and zf.exists("/t/a/b") is None
            assert zf.get("/made")[0] == b"m"
            zf.create("/u/v/w", makepath=True)
            zf.remove_recursive("/u")
            assert zf.exists("/u") is None
            t = zf.transaction()
            t.check_not_exists("/u")
            t.create("/u2")
            assert t.commit() == [True, "/u2"]
        ens.stop()
        ens.start()  # every member replays its log (no snapshot since start)
        for i in ens.voters:
            with SyncClient(ens.member_hosts(i), timeout=10) as z:
                z.sync("/")
                kids = set(z.get_children("/"))
                assert {"keep", "made", "u2"} <= kids and not {"t", "u"} & kids
                assert z.get("/made")[0] == b"m"
