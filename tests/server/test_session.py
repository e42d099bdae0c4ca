"""Session ids, passwords and tick-bucketed expiry (pure, no sockets)."""

from zabby.server.session import (
    CONTAINER_EPHEMERAL_OWNER,
    SessionTracker,
    initial_session_id,
    session_password,
)


def test_password_matches_apache_zookeeper():
    # Produced by java.util.Random(id ^ 0xB3415C00L).nextBytes(new byte[16]) on Java 17,
    # which is how ZooKeeper 3.8 derives a session's password.
    assert session_password(72057594037927936).hex() == "f22acd4a97e69d6d20a49bb638eadb38"
    assert session_password(-5).hex() == "d47144b5e45e45c49c3b7fdcd66257ba"
    assert session_password(1) != session_password(2)


def test_session_ids_carry_server_id_and_are_unique():
    t = SessionTracker(2000, server_id=1, now_ms=1_700_000_000_000)
    a, b = t.new_id(), t.new_id()
    assert b == a + 1
    assert (a >> 56) & 0xFF == 1
    assert initial_session_id(0, 0) != CONTAINER_EPHEMERAL_OWNER


def test_expiry_rounds_up_to_the_next_tick_and_touch_extends():
    t = SessionTracker(1000, server_id=1, now_ms=0)
    s = t.add(42, 4000, now_ms=500)
    assert s.expire_at == 5000  # (500 + 4000) rounded up to the next tick
    assert list(t.expired(4999)) == []
    t.touch(s, now_ms=3000)
    assert s.expire_at == 8000
    assert list(t.expired(7999)) == []
    assert list(t.expired(8000)) == [s]
    assert s.closing
    assert not t.touch(s, now_ms=9000)  # a closing session cannot be revived


def test_remove_forgets_the_session():
    t = SessionTracker(1000, server_id=1, now_ms=0)
    t.add(7, 2000, now_ms=0)
    assert t.remove(7) is not None
    assert t.get(7) is None
    assert list(t.expired(10**9)) == []
