"""The replicated state machine: ZooKeeper's DataTree plus PrepRequestProcessor.

Pure and deterministic: no I/O, no clock, no randomness. A write goes through
`prepare` (validation against the tree plus prepared-but-unapplied changes,
producing a `Txn`) and then `apply` (the same on every server, in zxid order).
Reads go straight to the applied tree, never to pending changes, as ZooKeeper.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Final

from mypy_extensions import mypyc_attr

from ..wire.constants import (
    CM_CONTAINER,
    CM_EPHEMERAL,
    CM_EPHEMERAL_SEQUENTIAL,
    CM_PERSISTENT_SEQUENTIAL,
    CM_PERSISTENT_SEQUENTIAL_WITH_TTL,
    CM_PERSISTENT_WITH_TTL,
    DEFAULT_MAX_BUFFER,
    ERR_NODEEXISTS,
    OP_CHECK,
    OP_CLOSE_SESSION,
    OP_CREATE,
    OP_CREATE2,
    OP_CREATE_CONTAINER,
    OP_CREATE_SESSION,
    OP_CREATE_TTL,
    OP_DELETE,
    OP_DELETE_CONTAINER,
    OP_ERROR,
    OP_EXISTS,
    OP_GET_CHILDREN,
    OP_GET_CHILDREN2,
    OP_GET_DATA,
    OP_MULTI,
    OP_MULTI_READ,
    OP_RECONFIG,
    OP_SET_ACL,
    OP_SET_DATA,
    PERM_ADMIN,
    PERM_CREATE,
    PERM_DELETE,
    PERM_READ,
    PERM_WRITE,
    CreateMode,
    Err,
    EventType,
    Op,
)
from ..wire.jute import EncodedStrings, encoded_strings
from ..wire.protocol import MultiRequest, MultiResponse
from ..wire.records import (
    Create2Response,
    CreateRequest,
    DeleteRequest,
    ErrorResponse,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsResponse,
    Id,
    PathResponse,
    SetDataRequest,
    StatResponse,
)
from . import quota as qt
from . import znode as zn
from .acl import (
    DEFAULT_PROVIDERS,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    ACLError,
    check_perm,
    fixup_acl,
    intern_acl,
    redact_acl,
)
from .digest import DIGEST_LOG_INTERVAL, DIGEST_LOG_LIMIT, MASK, node_digest, signed
from .javaorder import children_order, grow_cap, java_order, table_size_for
from .keeper import (
    KEEPER_MULTI_OPS,
    KEEPER_PREP,
    keeper_apply,
    keeper_multi_prep,
    keeper_multi_read,
)
from .paths import is_valid_path
from .txn import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    TxnHeader,
)
from .watches import WatchManager
from .znode import ZNode

__all__ = ["ApplyResult", "DataTree", "RequestContext", "SPECIAL_PATHS"]

log = logging.getLogger(__name__)
_QUOTA_ROOT: Final = qt.QUOTA_ROOT
_LIMIT_NODE: Final = qt.LIMIT_NODE
_STAT_NODE: Final = qt.STAT_NODE
_QROOT_LEN: Final = qt.QUOTA_ROOT_LEN
_DIGEST_LOG_MASK: Final = DIGEST_LOG_INTERVAL - 1
_KNOWN_DIGESTS_MAX: Final = 1 << 16  # ~6 MB at most

SPECIAL_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})

_CHECK_OK: Final = (OP_CHECK, 0, None)  # a check's result in a multi reply
# the event types apply reports, looked up once (members, not ints: they print as such)
_EV_CREATED: Final = EventType.NODE_CREATED
_EV_DELETED: Final = EventType.NODE_DELETED
_EV_DATA_CHANGED: Final = EventType.NODE_DATA_CHANGED
_EV_CHILDREN_CHANGED: Final = EventType.NODE_CHILDREN_CHANGED
# reply codes as the members (they print as such), held in C statics under mypyc
_ERR_OK: Final = Err.OK
_ERR_NONODE: Final = Err.NONODE
_KEEPER_MULTI_MIN: Final = 500  # ClickHouse Keeper's multi ops are above (tree/keeper.py)
# A directory with at least this many children keeps its last listing (names in
# ZooKeeper's order and their encoding: ~12 bytes a child) until it changes.
_LISTING_CACHE_MIN: Final = 1024
# CreateMode(flags) without an enum construction per create (~3 us each)
_MODES: Final = {int(m): m for m in CreateMode}
_TTL_AS_CREATE: Final = -1000  # marker: a create op with TTL flags inside a multi
_CREATE_OPS: Final = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL})
_MULTI_WRITE_OPS: Final = frozenset(
    {Op.CREATE, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE, Op.SET_DATA, Op.CHECK, _TTL_AS_CREATE}
)


def _i32(v: int) -> int:
    """Java int overflow."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v >= 0x80000000 else v


class RequestContext:
    """Who asks and when.

    A plain class, not a dataclass: mypyc compiles its constructor, where a
    dataclass's generated ``__init__`` stays interpreted (one per write)."""

    __slots__ = ("session_id", "cxid", "zxid", "time", "auth")

    def __init__(self, session_id: int, cxid: int, zxid: int, time: int,
                 auth: list[Id] | None = None) -> None:
        self.session_id = session_id
        self.cxid = cxid
        self.zxid = zxid
        self.time = time
        self.auth: list[Id] = [] if auth is None else auth

    def __repr__(self) -> str:
        return (f"RequestContext(session_id={self.session_id}, cxid={self.cxid}, "
                f"zxid={self.zxid}, time={self.time}, auth={self.auth!r})")


_ZEROS: Final = "0000000000"


def sequence_suffix(n: int) -> str:
    """A sequential node's suffix: the parent's cversion as ZooKeeper's "%010d" (ten
    digits, zero-padded; a negative one, after the int32 wraps, as "-000000001").
    `f"{n:010d}"` compiles to a generic str.format call that was half of a sequential
    create's prepare."""
    s = str(n)
    k = len(s)
    if k >= 10:
        return s
    if n >= 0:
        return _ZEROS[k:] + s
    return "-" + _ZEROS[k:] + s[1:]


@mypyc_attr(native_class=False)  # a list subclass: mypyc keeps it a Python class
class EventList(list):
    """ApplyResult.events: (event type, path) pairs; ``acls[i]`` is the ACL of the
    node event i is about, as it was when the change happened (the parent's for
    NODE_CHILDREN_CHANGED). ZooKeeper delivers an event only to a connection that
    may READ that node (its fix for CVE-2024-23944, in Debian's 3.8.0 too)."""

    __slots__ = ("acls",)

    def __init__(self) -> None:
        # (no list.__init__: a new list is empty; the call cost ~2 % of a create)
        self.acls: list = []

    def add(self, event_type: int, path: str, acl) -> None:
        self.append((event_type, path))
        self.acls.append(acl)


class ApplyResult:
    """Outcome of applying one txn.

    `err` is what goes in the reply header: note that a failed *multi* replies
    with err 0 (the per-op codes are in the MultiResponse), as ZooKeeper 3.8.
    `multi_err` is the first non-zero per-op code of a multi (ZooKeeper's
    ProcessTxnResult.err), for logs and metrics. (Not a dataclass, for the same
    reason as RequestContext: one is made per txn applied.)
    """

    __slots__ = ("err", "response", "events", "path", "multi_err")

    def __init__(self, err: int, response: Any, events: EventList,
                 path: str | None = None, multi_err: int = 0) -> None:
        self.err = err
        self.response = response  # a record, a MultiResponse or None
        self.events = events  # (event type, path) pairs, with .acls
        self.path = path
        self.multi_err = multi_err

    def __repr__(self) -> str:
        return (f"ApplyResult(err={self.err}, response={self.response!r}, "
                f"events={self.events!r}, path={self.path!r}, multi_err={self.multi_err})")


class _KErr(Exception):
    """A KeeperException inside prepare/apply; `err` is its code."""

    def __init__(self, err: int) -> None:
        self.err = int(err)


class _Change:
    """PrepRequestProcessor.ChangeRecord: a pending view of one path."""

    __slots__ = (
        "zxid", "path", "exists", "version", "cversion", "aversion",
        "ephemeral_owner", "child_count", "acl", "data",
    )

    def __init__(self, zxid, path, exists, version=0, cversion=0, aversion=0,
                 ephemeral_owner=0, child_count=0, acl=None, data=None):
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.child_count = child_count
        self.acl = acl
        self.data = data

    def duplicate(self, zxid: int) -> _Change:
        return _Change(zxid, self.path, self.exists, self.version, self.cversion,
                       self.aversion, self.ephemeral_owner, self.child_count,
                       self.acl, self.data)


def _normalize_multi_op(op: int, req):
    """What MultiOperationRecord makes of an op: creates get their opcode from
    their flags (create2 becomes create, a container flag makes createContainer,
    createTTL without TTL flags becomes a plain create without its ttl)."""
    if op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        mode = _MODES.get(req.flags, CreateMode.PERSISTENT)
        if mode.ttl:
            return (int(Op.CREATE_TTL), req) if op == Op.CREATE_TTL else (_TTL_AS_CREATE, req)
        if op == Op.CREATE_TTL:
            req = CreateRequest(req.path, req.data, req.acl, req.flags)
        return (int(Op.CREATE_CONTAINER) if mode.container else int(Op.CREATE)), req
    return op, req


def _java_trim(s: str) -> str:
    """String.trim(): strips chars <= U+0020 from both ends."""
    i, j = 0, len(s)
    while i < j and s[i] <= " ":
        i += 1
    while j > i and s[j - 1] <= " ":
        j -= 1
    return s[i:j]


class DataTree:
    """Znodes by path, with ZooKeeper 3.8's write validation and application."""

    # for tree/keeper.py (ClickHouse Keeper's extension opcodes)
    KErr: ClassVar[type[_KErr]] = _KErr
    Change: ClassVar[type[_Change]] = _Change
    # zabby.keeperExtensions: prepare Keeper's opcodes (the server sets it); applying
    # their txns needs nothing new, so replay never depends on it
    keeper_extensions = False
    # (session id) -> 0 or the error an ephemeral create of that session gets, checked
    # where ZooKeeper's validateCreateRequest checks the session (a leader with
    # localSessionsEnabled sets it: server.local_sessions); None: no check
    # (annotated: a compiled DataTree would otherwise only ever accept None here)
    ephemeral_session_check: Callable[[int], int] | None = None

    def __init__(
        self,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        extended_types: bool = False,
        max_never_used_ms: int = 0,
    ) -> None:
        self.max_buffer = max_buffer
        self.extended_types = extended_types
        # zookeeper.containerMaxNeverUsedIntervalMs: 0 keeps never-used containers
        self.max_never_used_ms = max_never_used_ms
        # registered authentication schemes -> "counts for the auth scheme" (acl.py);
        # the server adds x509 / sasl when they are configured
        self.acl_providers: dict[str, bool] = dict(DEFAULT_PROVIDERS)
        self.last_zxid = 0
        self.sessions: dict[int, int] = {}
        self.watches = WatchManager()
        self._nodes: dict[str, ZNode] = {}
        # sum of len(path) + data length over _nodes, kept up to date once computed
        # (approximate_data_size; None: not computed since _nodes was replaced)
        self._approx_size: int | None = None
        self._ephemerals: dict[int, dict[str, None]] = {}
        self._containers: dict[str, None] = {}
        self._ttls: dict[str, None] = {}
        # pending overlay: outstandingChanges (ordered) and outstandingChangesForPath
        self._outstanding: deque[_Change] = deque()
        self._outstanding_by_path: dict[str, _Change] = {}
        # listings of big directories (node -> EncodedStrings), dropped on change
        self._listings: dict[ZNode, EncodedStrings] = {}
        # quotas (zookeeper.enforceQuota; the quota'd paths, PathTrie's content) and
        # the tree digest (digest.enabled): None while not kept; changed nodes whose
        # digest is not in the sum yet; the (zxid, digest) history `hash` answers
        self.enforce_quota = False
        self._quotas: set[str] = set()
        self._quota_log: qt.RateLog | None = None
        # quota_exceeded_error_per_namespace (mntr): refusals by the path's top name
        self.quota_exceeded: dict[str, int] = {}
        self._digest_on = True
        self._digest: int | None = None
        self._dirty: dict[str, None] = {}
        # digests computed at recent flushes, by path (valid while the node is clean):
        # a node changed again later is not hashed a second time for its old state
        self._known: dict[str, int] = {}
        self._digest_log: deque[tuple[int, int]] = deque(maxlen=DIGEST_LOG_LIMIT)
        self._init_tree()
        self.reset_digest()

    # ------------------------------------------------------------ the tree
    def _init_tree(self) -> None:
        empty = b""
        root = ZNode(empty, OPEN_ACL_UNSAFE, 0, 0)
        proc = ZNode(empty, OPEN_ACL_UNSAFE, 0, 0)
        quota = ZNode(empty, OPEN_ACL_UNSAFE, 0, 0)
        config = ZNode(empty, READ_ACL_UNSAFE, 0, 0)
        # DataTree's constructor sets the config node's ACL with setACL(..., -1)
        config.aversion = -1
        self._nodes["/"] = root
        self._nodes["/zookeeper"] = proc
        self._nodes["/zookeeper/quota"] = quota
        self._nodes["/zookeeper/config"] = config
        self._add_child(root, "zookeeper")
        self._add_child(proc, "quota")
        self._add_child(proc, "config")

    def _add_child(self, parent: ZNode, name: str) -> None:
        if self._listings:
            self._listings.pop(parent, None)
        ch = parent.children
        if ch is None:
            ch = parent.children = {}
        ch[name] = None
        n = len(ch)
        if n > (parent.child_cap * 3) // 4 or parent.child_cap == 0:
            parent.child_cap = grow_cap(parent.child_cap, n)

    def _remove_child(self, parent: ZNode, name: str) -> None:
        if self._listings:
            self._listings.pop(parent, None)
        ch = parent.children
        if ch is not None:
            ch.pop(name, None)
            if not ch:
                parent.children = None

    @property
    def node_count(self) -> int:
        return len(self._nodes)

    def get_node(self, path: str) -> ZNode | None:
        """The node at `path` ("" is the root, as ZooKeeper's alias)."""
        if path == "":
            path = "/"
        return self._nodes.get(path)

    def children_of(self, node: ZNode) -> list[str]:
        """Child names in the order ZooKeeper lists them (Java HashSet order)."""
        ch = node.children
        if not ch:
            return []
        got = self._listings.get(node)
        if got is not None:
            return got
        order = children_order(ch, node.child_cap)
        if len(order) >= _LISTING_CACHE_MIN:
            # kept, with its wire encoding, until a child is added or removed
            got = self._listings[node] = encoded_strings(order)
            return got
        return order

    def ephemerals_of(self, session_id: int) -> set[str]:
        return set(self._ephemerals.get(session_id, ()))

    def ephemerals_count(self) -> int:
        """Ephemeral znodes of all sessions (mntr's ephemerals_count), without copying."""
        return sum(len(p) for p in self._ephemerals.values())

    def ephemerals(self) -> dict[int, set[str]]:
        """All sessions' ephemeral paths (for the `dump` four-letter word)."""
        return {s: set(p) for s, p in self._ephemerals.items() if p}

    @property
    def containers(self) -> set[str]:
        return set(self._containers)

    @property
    def ttls(self) -> set[str]:
        return set(self._ttls)

    def iter_nodes(self) -> Iterator[tuple[str, ZNode]]:
        """Every (path, node), parents before children (depth first from "/")."""
        nodes = self._nodes
        stack = ["/"]
        while stack:
            path = stack.pop()
            node = nodes[path]
            yield path, node
            ch = node.children
            if ch:
                prefix = "/" if path == "/" else path + "/"
                stack.extend(prefix + name for name in reversed(list(ch)))

    def nodes_in_creation_order(self) -> Iterable[tuple[str, ZNode]]:
        """Every (path, node) in the order the nodes were created (the order of
        `_nodes`): parents before children, and each parent's children in the order
        of its children dict -- both are appended to on a create and lose the key on
        a delete, so siblings keep the same relative order in both. What a snapshot
        writes (storage/snapcodec.py): a dict walk, against `iter_nodes`' path
        strings and stack (370 of 770 ms at 1M znodes)."""
        return self._nodes.items()

    def approximate_data_size(self) -> int:
        """Sum of path lengths and data lengths (ZooKeeper's approximateDataSize).

        Walked once, then kept up to date as nodes are created, deleted and set (as
        ZooKeeper caches it): mntr and every metrics scrape read it."""
        total = self._approx_size
        if total is None:
            total = 0
            for path, node in self._nodes.items():
                total += len(path) + node.data_length
            self._approx_size = total
        # ZooKeeper also counts the "" alias of the root (length 0 + root data)
        return total + self._nodes["/"].data_length

    def stat(self, path: str):
        node = self.get_node(path)
        return None if node is None else node.stat(self.extended_types)

    # --------------------------------------------------------------- digest
    @property
    def digest_enabled(self) -> bool:
        return self._digest_on

    @digest_enabled.setter
    def digest_enabled(self, on: bool) -> None:
        if bool(on) != self._digest_on:
            self._digest_on = bool(on)
            self.reset_digest()

    def reset_digest(self) -> None:
        """Recompute the digest from every node (after the nodes were replaced)."""
        self._dirty.clear()
        self._known.clear()
        if not self._digest_on:
            self._digest = None
            return
        total = 0
        for path, node in self._nodes.items():
            total += node_digest(path, node)
        self._digest = total & MASK

    def _flush_digest(self) -> int:
        dg = self._digest
        if dg is None:
            return 0
        dirty = self._dirty
        if dirty:
            nodes = self._nodes
            known = self._known
            if len(known) > _KNOWN_DIGESTS_MAX:
                known.clear()
            for path in dirty:
                node = nodes.get(path)
                if node is not None:
                    d = known[path] = node_digest(path, node)
                    dg += d
            dirty.clear()
        dg &= MASK
        self._digest = dg
        return dg

    def digest(self) -> int:
        """The tree's digest now, as ZooKeeper's getTreeDigest (0 when disabled)."""
        return signed(self._flush_digest())

    def digest_log(self) -> list[tuple[int, int]]:
        """(zxid, digest) every 128th zxid, the last 1024 (the `hash` command)."""
        return list(self._digest_log)

    # --------------------------------------------------------------- quotas
    def quota_paths(self) -> set[str]:
        return set(self._quotas)

    def max_prefix_with_quota(self, path: str) -> str | None:
        """getMaxPrefixWithQuota: the deepest quota'd path above or at `path`."""
        if not self._quotas:
            return None
        return qt.max_prefix(self._quotas, path)

    def quota_metrics(self) -> list[tuple[str, dict[str, int]]]:
        """QuotaMetricsUtils' gauge sets: limits (a hard limit if set, else the soft
        one) and usage (zookeeper_stats) summed by top namespace, from every leaf
        zookeeper_limits / zookeeper_stats node below /zookeeper/quota."""
        count_limit: dict[str, int] = {}
        bytes_limit: dict[str, int] = {}
        count_usage: dict[str, int] = {}
        bytes_usage: dict[str, int] = {}
        nodes = self._nodes
        root = nodes.get(_QUOTA_ROOT)
        if root is not None and root.children:
            limit_end, stat_end = "/" + _LIMIT_NODE, "/" + _STAT_NODE
            stack = [_QUOTA_ROOT]
            while stack:
                path = stack.pop()
                node = nodes[path]
                if node.children:
                    stack.extend(f"{path}/{c}" for c in node.children)
                    continue
                is_limit = path.endswith(limit_end)
                if not is_limit and not path.endswith(stat_end):
                    continue
                ns = qt.top_namespace(path[_QROOT_LEN:])
                if ns is None or node.data is None:
                    continue
                try:
                    st = qt.parse_stats(node.data)
                except qt.StatsError:
                    continue
                get = st.get
                if is_limit:
                    hard = get("countHardLimit", -1)
                    count_limit[ns] = count_limit.get(ns, 0) + (hard if hard > -1 else get("count", -1))
                    hard = get("byteHardLimit", -1)
                    bytes_limit[ns] = bytes_limit.get(ns, 0) + (hard if hard > -1 else get("bytes", -1))
                else:
                    count_usage[ns] = count_usage.get(ns, 0) + get("count", -1)
                    bytes_usage[ns] = bytes_usage.get(ns, 0) + get("bytes", -1)
        return [("quota_count_limit_per_namespace", count_limit),
                ("quota_bytes_limit_per_namespace", bytes_limit),
                ("quota_count_usage_per_namespace", count_usage),
                ("quota_bytes_usage_per_namespace", bytes_usage)]

    def _setup_quotas(self) -> None:
        """setupQuota: find every .../zookeeper_limits leaf below /zookeeper/quota,
        and recount its path's zookeeper_stats (after a snapshot was loaded)."""
        self._quotas.clear()
        nodes = self._nodes
        if _QUOTA_ROOT not in nodes:
            return
        end = "/" + _LIMIT_NODE
        stack = [_QUOTA_ROOT]
        while stack:
            path = stack.pop()
            ch = nodes[path].children
            if ch:
                stack.extend(f"{path}/{c}" for c in ch)
            elif path.endswith(end):
                real = path[_QROOT_LEN:path.index(end)]
                self._quota_recount(real)
                self._quota_add(real)

    def _quota_add(self, real: str) -> None:
        norm = qt.normalize(real)
        if norm != "/":
            self._quotas.add(norm)

    def _quota_recount(self, real: str) -> None:
        """updateQuotaForPath: zookeeper_stats of `real` := its subtree's count, bytes."""
        count = size = 0
        nodes = self._nodes
        if real in nodes:
            stack = [real]
            while stack:
                p = stack.pop()
                node = nodes[p]
                count += 1
                size += node.data_length
                ch = node.children
                if ch:
                    stack.extend(f"{p}/{c}" for c in ch)
        stat = nodes.get(qt.stat_path(real))
        if stat is None:
            log.warning("Missing quota stat node %s", qt.stat_path(real))
            return
        stat.data = qt.format_stats({"count": count, "bytes": size})

    def _quota_update(self, prefix: str, bytes_diff: int, count_diff: int) -> None:
        """updateQuotaStat: add the diffs to prefix's zookeeper_stats (its data only:
        no version, mzxid, watch or digest change, as ZooKeeper)."""
        sp = qt.stat_path(prefix)
        node = self._nodes.get(sp)
        if node is None:
            log.error("Missing node for stat %s", sp)
            return
        try:
            st = qt.parse_stats(node.data)
        except qt.StatsError as e:
            log.error("Unreadable quota stats %s: %s", sp, e)
            return
        st["count"] = st.get("count", -1) + count_diff
        st["bytes"] = st.get("bytes", -1) + bytes_diff
        node.data = qt.format_stats(st)

    def _check_quota(self, path: str, bytes_diff: int, count_diff: int) -> None:
        """ZooKeeperServer.checkQuota (enforceQuota): the applied tree's stats plus
        this write against the deepest quota's limits; a hard limit refuses the write
        (QUOTAEXCEEDED), a soft one is logged."""
        prefix = qt.max_prefix(self._quotas, path)
        if prefix is None:
            return
        nodes = self._nodes
        lp = qt.limit_path(prefix)
        node = nodes.get(lp)
        if node is None:
            log.error("Missing limit node for quota %s", lp)
            return
        try:
            limits = qt.parse_stats(node.data)
            get = limits.get
            check_count = count_diff != 0 and (get("count", -1) > -1 or get("countHardLimit", -1) > -1)
            check_bytes = bytes_diff != 0 and (get("bytes", -1) > -1 or get("byteHardLimit", -1) > -1)
            if not check_count and not check_bytes:
                return
            sp = qt.stat_path(prefix)
            node = nodes.get(sp)
            if node is None:
                log.error("Missing node for stat %s", sp)
                return
            current = qt.parse_stats(node.data)
        except qt.StatsError:
            # ZooKeeper's StatsTrack throws; PrepRequestProcessor answers that so
            raise _KErr(Err.MARSHALLINGERROR) from None
        for kind, diff, soft_key, hard_key, check in (
                ("count", count_diff, "count", "countHardLimit", check_count),
                ("bytes", bytes_diff, "bytes", "byteHardLimit", check_bytes)):
            if not check:
                continue
            new = current.get(kind, -1) + diff
            hard = get(hard_key, -1) > -1
            limit = get(hard_key, -1) if hard else get(soft_key, -1)
            if new > limit:
                if self._quota_log is None:
                    self._quota_log = qt.RateLog()
                word = "Count" if kind == "count" else "Byte"
                self._quota_log(f"Quota exceeded: {prefix} [current {kind}={new}, "
                                f"{'hard' if hard else 'soft'}{word}Limit={limit}]")
                if hard:
                    ns = qt.top_namespace(path)
                    if ns is not None:
                        self.quota_exceeded[ns] = self.quota_exceeded.get(ns, 0) + 1
                    raise _KErr(Err.QUOTAEXCEEDED)

    # --------------------------------------------------------------- reads
    def read(self, op: int, body, auth: list[Id], session_id: int, watcher=None):
        """Answer a read: (err, response). Never raises for bad input.

        When `watcher` is given and the request asks for a watch, it is
        registered in `self.watches` exactly when ZooKeeper would register it
        (exists: also when the node is absent; getData/getChildren: only on
        success).
        """
        try:
            if op == OP_MULTI_READ:
                return self._multi_read(body, auth)
            return self._read_one(op, body, auth, watcher, session_id)
        except _KErr as e:
            return e.err, None

    def _read_one(self, op: int, body, auth: list[Id], watcher, session_id: int):
        ext = self.extended_types
        if op == OP_EXISTS:
            path = body.path
            if path is None:
                raise _KErr(Err.MARSHALLINGERROR)
            if "\0" in path:
                raise _KErr(Err.BADARGUMENTS)
            if watcher is not None and body.watch:
                self.watches.add_exist_watch(path, watcher)
            node = self.get_node(path)
            if node is None:
                return _ERR_NONODE, None
            return _ERR_OK, StatResponse(node.stat(ext))
        if op == OP_GET_DATA or op == OP_GET_CHILDREN or op == OP_GET_CHILDREN2:
            path = body.path
            node = self._read_node(path)
            if not check_perm(node.acl, PERM_READ, auth):
                raise _KErr(Err.NOAUTH)
            watch = watcher is not None and getattr(body, "watch", False)
            if op == OP_GET_DATA:
                if watch:
                    self.watches.add_data_watch(path, watcher)
                return _ERR_OK, GetDataResponse(node.data, node.stat(ext))
            if watch:
                self.watches.add_child_watch(path, watcher)
            children = self.children_of(node)
            if op == OP_GET_CHILDREN:
                return _ERR_OK, GetChildrenResponse(children)
            return _ERR_OK, GetChildren2Response(children, node.stat(ext))
        if op == Op.GET_ACL:
            node = self._read_node(body.path)
            if not check_perm(node.acl, PERM_READ | PERM_ADMIN, auth):
                raise _KErr(Err.NOAUTH)
            acl = list(node.acl)
            if not check_perm(node.acl, PERM_ADMIN, auth):
                acl = redact_acl(acl)
            return Err.OK, GetACLResponse(acl, node.stat(ext))
        if op == Op.GET_ALL_CHILDREN_NUMBER:
            path = body.path
            node = self._read_node(path)
            if not check_perm(node.acl, PERM_READ, auth):
                raise _KErr(Err.NOAUTH)
            return Err.OK, GetAllChildrenNumberResponse(self._all_children_number(path))
        if op == Op.GET_EPHEMERALS:
            return Err.OK, GetEphemeralsResponse(self._session_ephemerals(body.prefixPath, session_id))
        raise _KErr(Err.UNIMPLEMENTED)

    def _read_node(self, path) -> ZNode:
        if path is None:
            raise _KErr(Err.MARSHALLINGERROR)
        node = self.get_node(path)
        if node is None:
            raise _KErr(Err.NONODE)
        return node

    def _all_children_number(self, path: str) -> int:
        if path == "/":
            return len(self._nodes) - 1  # ZooKeeper: nodes.size() - 2 ("" and "/")
        if path == "":
            return len(self._nodes)  # every key starting with "/" (root included)
        # every path starting with path + "/": all descendants
        count = 0
        nodes = self._nodes
        stack = [path]
        while stack:
            p = stack.pop()
            ch = nodes[p].children
            if ch:
                count += len(ch)
                stack.extend(p + "/" + c for c in ch)
        return count

    def _session_ephemerals(self, prefix, session_id) -> list[str]:
        mine = self._ephemerals.get(session_id)
        if not mine:
            return []
        # ZooKeeper iterates a clone of the session's HashSet (default capacity 16
        # grown as needed; the clone is sized for its content).
        cap = grow_cap(0, len(mine), 16)
        paths = java_order(mine, cap)
        paths = java_order(paths, table_size_for(int(len(mine) / 0.75 + 1.0)))
        if prefix is None or _java_trim(prefix) in ("", "/"):
            return paths
        return [p for p in paths if p.startswith(prefix)]

    def _multi_read(self, body: MultiRequest, auth):
        results = []
        for op, req in body.ops:
            if op not in (Op.GET_CHILDREN, Op.GET_DATA):
                if op == Op.FILTERED_LIST and self.keeper_extensions:
                    results.append(keeper_multi_read(self, req, auth))  # tree/keeper.py
                    continue
                # "Invalid type of readOp": the whole request fails
                return Err.MARSHALLINGERROR, None
            try:
                path = req.path
                node = self._read_node(path)
                if not check_perm(node.acl, PERM_READ, auth):
                    raise _KErr(Err.NOAUTH)
                if op == Op.GET_DATA:
                    results.append((int(Op.GET_DATA), 0, GetDataResponse(node.data, node.stat(self.extended_types))))
                else:
                    results.append((int(Op.GET_CHILDREN), 0, GetChildrenResponse(self.children_of(node))))
            except _KErr as e:
                results.append((int(Op.ERROR), e.err, ErrorResponse(e.err)))
        return Err.OK, MultiResponse(results)

    # ----------------------------------------------------- pending overlay
    def _record(self, path: str) -> _Change:
        """getRecordForPath: the pending view of `path`, or NONODE."""
        c = self._outstanding_by_path.get(path)
        if c is None:
            node = self._nodes.get(path)
            if node is None:
                raise _KErr(Err.NONODE)
            return _Change(-1, path, True, node.version, node.cversion, node.aversion,
                           node.ephemeral_owner, node.num_children, node.acl, node.data)
        if not c.exists:
            raise _KErr(Err.NONODE)
        return c

    def _add_change(self, c: _Change) -> None:
        self._outstanding.append(c)
        self._outstanding_by_path[c.path] = c

    def set_config_data(self, data: bytes, zxid: int, time: int) -> None:
        """Put this server's view of the membership into /zookeeper/config (not a txn:
        every member does it itself, as ZooKeeper's initConfigInZKDatabase): data,
        mzxid = the configuration's version, mtime, and dataVersion -1."""
        node = self._nodes["/zookeeper/config"]
        if self._approx_size is not None:
            self._approx_size += len(data) - node.data_length
        node.data = data
        node.mzxid = zxid
        node.mtime = time
        node.version = -1

    def discard_pending(self) -> None:
        """Forget every prepared-but-unapplied change."""
        self._outstanding.clear()
        self._outstanding_by_path.clear()

    @property
    def pending_count(self) -> int:
        return len(self._outstanding)

    def _pending_for_multi(self, ops) -> dict[str, _Change]:
        saved: dict[str, _Change] = {}
        by_path = self._outstanding_by_path
        for _op, req in ops:
            path = getattr(req, "path", None)
            if path is None:
                continue
            c = by_path.get(path)
            if c is not None:
                saved[path] = c
            i = path.rfind("/")
            if i == -1 or "\0" in path:
                continue
            parent = path[:i] or "/"
            c = by_path.get(parent)
            if c is not None:
                saved[parent] = c
        return saved

    def _rollback(self, zxid: int, saved: dict[str, _Change]) -> None:
        out = self._outstanding
        by_path = self._outstanding_by_path
        while out and out[-1].zxid == zxid:
            c = out.pop()
            by_path.pop(c.path, None)
        if not out:
            return
        first = out[0].zxid
        for c in saved.values():
            if c.zxid >= first:
                by_path[c.path] = c

    # -------------------------------------------------------------- prepare
    def prepare(self, op: int, body, ctx: RequestContext) -> Txn:
        """Validate a write against the tree plus pending changes; return its Txn.

        A failed validation gives a Txn of type Op.ERROR with an ErrorTxn body;
        pass body=None for a request whose body did not decode (MARSHALLINGERROR);
        it still uses ctx.zxid (and must be applied like any other txn).
        """
        hdr = TxnHeader(ctx.session_id, ctx.cxid, ctx.zxid, ctx.time, int(op))
        try:
            if body is None and op != OP_CLOSE_SESSION:
                # the request body did not decode: ZooKeeper has already taken a
                # zxid and answers MARSHALLINGERROR with an error txn
                raise _KErr(Err.MARSHALLINGERROR)
            if op == OP_MULTI:
                return Txn(hdr, self._prepare_multi(body, ctx))
            ttype, tbody = self._prep(op, body, ctx)
            hdr.type = int(ttype)
            return Txn(hdr, tbody)
        except _KErr as e:
            hdr.type = OP_ERROR
            return Txn(hdr, ErrorTxn(e.err))

    def _prepare_multi(self, body: MultiRequest, ctx: RequestContext) -> MultiTxn:
        ops = [t if t[0] not in _CREATE_OPS else _normalize_multi_op(*t) for t in body.ops]
        for op, _req in ops:
            if op not in _MULTI_WRITE_OPS and not (
                    op in KEEPER_MULTI_OPS and self.keeper_extensions):
                # MultiOperationRecord refuses read ops in a write multi ("Mixing
                # different kind of ops"): the request fails whole
                raise _KErr(Err.MARSHALLINGERROR)
        saved = self._multi_saved = self._pending_for_multi(ops)
        subs: list[tuple[int, Any]] = []
        failed = False
        for op, req in ops:
            if failed:
                subs.append((OP_ERROR, ErrorTxn(int(Err.RUNTIMEINCONSISTENCY))))
                continue
            if op == _TTL_AS_CREATE:
                # a create op whose flags say TTL becomes a createTTL op without a
                # ttl: ZooKeeper fails the whole request (ClassCastException)
                self._rollback(ctx.zxid, saved)
                raise _KErr(Err.MARSHALLINGERROR)
            try:
                if op > _KEEPER_MULTI_MIN:  # ClickHouse Keeper's ops (tree/keeper.py)
                    subs.append(keeper_multi_prep(self, op, req, ctx))
                else:
                    subs.append(self._prep(op, req, ctx))
            except _KErr as e:
                failed = True
                subs.append((OP_ERROR, ErrorTxn(e.err)))
                self._rollback(ctx.zxid, saved)
        return MultiTxn.of(subs)

    def _prep(self, op: int, req, ctx: RequestContext) -> tuple[int, Any]:
        if op in _CREATE_OPS:
            return self._prep_create(op, req, ctx)
        if op == OP_DELETE:
            return self._prep_delete(req, ctx)
        if op == OP_SET_DATA:
            return self._prep_set_data(req, ctx)
        if op == OP_SET_ACL:
            return self._prep_set_acl(req, ctx)
        if op == OP_CHECK:
            return self._prep_check(req, ctx)
        if op == OP_DELETE_CONTAINER:
            return self._prep_delete_container(req, ctx)
        if op == OP_CREATE_SESSION:
            return OP_CREATE_SESSION, CreateSessionTxn(int(req))
        if op == OP_CLOSE_SESSION:
            return self._prep_close_session(ctx)
        keeper = KEEPER_PREP.get(op)
        if keeper is not None and self.keeper_extensions:
            return keeper(self, req, ctx)
        raise _KErr(Err.UNIMPLEMENTED)

    def _check_data(self, data) -> None:
        # A frame larger than jute.maxbuffer never gets here; a buffer longer
        # than it fails jute decoding in ZooKeeper ("Unreasonable length").
        if data is not None and len(data) > self.max_buffer:
            raise _KErr(Err.MARSHALLINGERROR)

    @staticmethod
    def _version_check(current: int, expected: int) -> int:
        if expected != -1 and expected != current:
            raise _KErr(Err.BADVERSION)
        return _i32(current + 1)

    def _prep_create(self, op: int, req, ctx: RequestContext) -> tuple[int, Any]:
        flags = req.flags
        if flags not in _MODES:
            raise _KErr(Err.BADARGUMENTS)
        # CreateMode's properties as int tests (each property was an interpreted
        # call building a tuple of enum members, up to six per create)
        f: int = flags
        is_ttl = f == CM_PERSISTENT_WITH_TTL or f == CM_PERSISTENT_SEQUENTIAL_WITH_TTL
        is_ephemeral = f == CM_EPHEMERAL or f == CM_EPHEMERAL_SEQUENTIAL
        ttl = req.ttl if op == OP_CREATE_TTL else -1
        if is_ttl:
            if not self.extended_types:
                raise _KErr(Err.UNIMPLEMENTED)
            if ttl <= 0 or ttl > zn.TTL_MAX:
                raise _KErr(Err.BADARGUMENTS)
        elif ttl >= 0:
            raise _KErr(Err.BADARGUMENTS)
        if self.ephemeral_session_check is not None and is_ephemeral:
            err = self.ephemeral_session_check(ctx.session_id)
            if err:
                raise _KErr(err)
        req_path = req.path
        if req_path is None:
            raise _KErr(Err.MARSHALLINGERROR)
        path: str = req_path
        i = path.rfind("/")
        if i == -1 or "\0" in path:
            raise _KErr(Err.BADARGUMENTS)
        parent_path = path[:i] or "/"
        try:
            # an encoded ACL takes 12+ bytes: a txn within jute.maxbuffer holds no more
            acl = fixup_acl(req.acl, ctx.auth, self.acl_providers, self.max_buffer // 12)
        except ACLError as e:
            raise _KErr(e.err) from None
        parent = self._record(parent_path)
        if not check_perm(parent.acl, PERM_CREATE, ctx.auth):
            raise _KErr(Err.NOAUTH)
        if f == CM_PERSISTENT_SEQUENTIAL or f == CM_EPHEMERAL_SEQUENTIAL or f == CM_PERSISTENT_SEQUENTIAL_WITH_TTL:
            path = path + sequence_suffix(parent.cversion)
        # the parent exists, so its path is valid: only the last name needs checking
        if not is_valid_path(path[i:] if 0 < i < len(path) - 1 else path):
            raise _KErr(Err.BADARGUMENTS)
        c = self._outstanding_by_path.get(path)
        if c is not None:
            if c.exists:
                raise _KErr(Err.NODEEXISTS)
        elif path in self._nodes:
            raise _KErr(Err.NODEEXISTS)
        if zn.ephemeral_kind(parent.ephemeral_owner, self.extended_types) == zn.NORMAL:
            raise _KErr(Err.NOCHILDRENFOREPHEMERALS)
        new_cversion = _i32(parent.cversion + 1)
        data = req.data
        self._check_data(data)
        if self.enforce_quota and self._quotas:
            self._check_quota(path, len(data) if data else 0, 1)
        if op == OP_CREATE_CONTAINER:
            txn: Any = CreateContainerTxn(path, data, acl, new_cversion)
        elif op == OP_CREATE_TTL:
            txn = CreateTTLTxn(path, data, acl, new_cversion, ttl)
        else:
            txn = CreateTxn(path, data, acl, is_ephemeral, new_cversion)
        if f == CM_CONTAINER:
            owner = zn.CONTAINER_OWNER
        elif is_ttl:
            owner = zn.ttl_owner(ttl)
        elif is_ephemeral:
            owner = ctx.session_id
        else:
            owner = 0
        zxid = ctx.zxid
        parent = parent.duplicate(zxid)
        parent.child_count += 1
        parent.cversion = new_cversion
        self._add_change(parent)
        self._add_change(_Change(zxid, path, True, 0, 0, 0, owner, 0, acl, data))
        return int(op), txn

    def _parent_for_delete(self, path) -> str:
        """getParentPathAndValidate."""
        if path is None:
            raise _KErr(Err.MARSHALLINGERROR)
        i = path.rfind("/")
        if i == -1 or "\0" in path or path in SPECIAL_PATHS:
            raise _KErr(Err.BADARGUMENTS)
        return path[:i] or "/"

    def _prep_delete(self, req: DeleteRequest, ctx: RequestContext) -> tuple[int, Any]:
        path = req.path
        parent_path = self._parent_for_delete(path)
        parent = self._record(parent_path)
        if not check_perm(parent.acl, PERM_DELETE, ctx.auth):
            raise _KErr(Err.NOAUTH)
        node = self._record(path)
        self._version_check(node.version, req.version)
        if node.child_count > 0:
            raise _KErr(Err.NOTEMPTY)
        self._record_delete(parent, path, ctx.zxid)
        return OP_DELETE, DeleteTxn(path)

    def _record_delete(self, parent: _Change, path: str, zxid: int) -> None:
        parent = parent.duplicate(zxid)
        parent.child_count -= 1
        self._add_change(parent)
        self._add_change(_Change(zxid, path, False, child_count=-1))

    def _prep_delete_container(self, req, ctx: RequestContext) -> tuple[int, Any]:
        path = req if isinstance(req, str) else req.path
        parent_path = self._parent_for_delete(path)
        node = self._record(path)
        if node.child_count > 0:
            raise _KErr(Err.NOTEMPTY)
        if zn.ephemeral_kind(node.ephemeral_owner, self.extended_types) == zn.NORMAL:
            raise _KErr(Err.BADVERSION)
        parent = self._record(parent_path)
        self._record_delete(parent, path, ctx.zxid)
        return OP_DELETE_CONTAINER, DeleteTxn(path)

    def _prep_set_data(self, req: SetDataRequest, ctx: RequestContext) -> tuple[int, Any]:
        path = req.path
        # every path in the tree is valid: only a miss needs the character walk
        if path not in self._nodes and not is_valid_path(path):
            raise _KErr(Err.BADARGUMENTS)
        node = self._record(path)
        if not check_perm(node.acl, PERM_WRITE, ctx.auth):
            raise _KErr(Err.NOAUTH)
        data = req.data
        self._check_data(data)
        if self.enforce_quota and self._quotas:
            self._check_quota(path, (len(data) if data else 0) - len(node.data or b""), 0)
        new_version = self._version_check(node.version, req.version)
        c = node.duplicate(ctx.zxid)
        c.version = new_version
        c.data = data
        self._add_change(c)
        return OP_SET_DATA, SetDataTxn(path, data, new_version)

    def _prep_set_acl(self, req, ctx: RequestContext) -> tuple[int, Any]:
        path = req.path
        if not is_valid_path(path):
            raise _KErr(Err.BADARGUMENTS)
        try:
            # an encoded ACL takes 12+ bytes: a txn within jute.maxbuffer holds no more
            acl = fixup_acl(req.acl, ctx.auth, self.acl_providers, self.max_buffer // 12)
        except ACLError as e:
            raise _KErr(e.err) from None
        node = self._record(path)
        if not check_perm(node.acl, PERM_ADMIN, ctx.auth):
            raise _KErr(Err.NOAUTH)
        new_version = self._version_check(node.aversion, req.version)
        c = node.duplicate(ctx.zxid)
        c.aversion = new_version
        c.acl = acl
        self._add_change(c)
        return OP_SET_ACL, SetACLTxn(path, acl, new_version)

    def _prep_check(self, req, ctx: RequestContext) -> tuple[int, Any]:
        path = req.path
        if path not in self._nodes and not is_valid_path(path):
            raise _KErr(Err.BADARGUMENTS)
        # getRecordForPath without building a ChangeRecord: only acl and version
        node: _Change | ZNode | None
        change = self._outstanding_by_path.get(path)
        if change is None:
            node = self._nodes.get(path)
            if node is None:
                raise _KErr(Err.NONODE)
        elif not change.exists:
            raise _KErr(Err.NONODE)
        else:
            node = change
        if not check_perm(node.acl, PERM_READ, ctx.auth):
            raise _KErr(Err.NOAUTH)
        return OP_CHECK, CheckVersionTxn(path, self._version_check(node.version, req.version))

    def _prep_close_session(self, ctx: RequestContext) -> tuple[int, Any]:
        sid = ctx.session_id
        es = dict.fromkeys(self._ephemerals.get(sid, ()))
        for c in self._outstanding:
            if not c.exists:
                es.pop(c.path, None)
            elif c.ephemeral_owner == sid:
                es[c.path] = None
        paths = sorted(es)
        for p in paths:
            self._add_change(_Change(ctx.zxid, p, False))
        return OP_CLOSE_SESSION, CloseSessionTxn(paths)

    # ---------------------------------------------------------------- apply
    def apply(self, txn: Txn) -> ApplyResult:
        """Apply a txn (from prepare, a log, or the leader). Deterministic."""
        hdr = txn.header
        zxid = hdr.zxid
        out = self._outstanding
        if out:
            by_path = self._outstanding_by_path
            while out and out[0].zxid <= zxid:
                c = out.popleft()
                if by_path.get(c.path) is c:
                    del by_path[c.path]
        events = EventList()
        t = hdr.type
        if t == OP_MULTI:
            result = self._apply_multi(hdr, txn.body, events)
        else:
            try:
                resp, path = self._apply_one(t, txn.body, hdr, events)
                result = ApplyResult(0, resp, events, path)
            except _KErr as e:
                result = ApplyResult(e.err, None, events, getattr(txn.body, "path", None))
                if t == OP_CREATE and e.err == ERR_NODEEXISTS:
                    self._fix_parent_cversion(txn.body, zxid)
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        if not zxid & _DIGEST_LOG_MASK:
            # DataTree.logZxidDigest: the history keeps every 128th zxid's digest
            self._digest_log.append((zxid, signed(self._flush_digest())))
        return result

    def _fix_parent_cversion(self, body: Any, zxid: int) -> None:
        """After a NODEEXISTS replaying a create: setCversionPzxid on the parent."""
        path = body.path
        parent_path = path[: path.rfind("/")] or "/"
        parent = self._nodes.get(parent_path)
        if parent is None:
            return
        new = body.parentCVersion
        if new == -1:
            new = _i32(parent.cversion + 1)
        if new > parent.cversion:
            if self._digest is not None:
                self._digest_touch(parent_path, parent)
            parent.cversion = new
            parent.pzxid = zxid

    def _apply_multi(self, hdr: TxnHeader, body: Any, events) -> ApplyResult:
        subs = body.ops()
        failed = any(t == OP_ERROR for t, _ in subs)
        post_failed = False
        results: list[tuple[int, int, Any]] = []
        first_err = 0
        for t, b in subs:
            if t == OP_CREATE2:
                # ZooKeeper 3.8's multi replay has no case for create2: it stops
                # here (IOException), keeping what was applied before.
                break
            if t == OP_ERROR:
                post_failed = True
            elif failed:
                t = OP_ERROR
                b = ErrorTxn(int(Err.RUNTIMEINCONSISTENCY) if post_failed else 0)
            if t == OP_ERROR:
                err = b.err
                results.append((OP_ERROR, err, ErrorResponse(err)))
                if err and not first_err:
                    first_err = err
                continue
            if t == OP_CHECK:  # nothing to apply
                results.append(_CHECK_OK)
                continue
            try:
                resp, _path = self._apply_one(t, b, hdr, events)
            except _KErr as e:
                if t == OP_CREATE and e.err == Err.NODEEXISTS:
                    self._fix_parent_cversion(b, hdr.zxid)
                results.append((OP_ERROR, e.err, ErrorResponse(e.err)))
                if not first_err:
                    first_err = e.err
                continue
            if t == OP_CREATE:
                results.append((OP_CREATE, 0, resp))
            elif t in (OP_CREATE_TTL, OP_CREATE_CONTAINER):
                results.append((OP_CREATE2, 0, resp))
            elif t in (OP_DELETE, OP_DELETE_CONTAINER):
                results.append((OP_DELETE, 0, None))
            elif t == OP_CHECK:
                results.append((OP_CHECK, 0, None))
            else:
                results.append((int(t), 0, resp))
        return ApplyResult(Err.OK, MultiResponse(results), events, None, first_err)

    def _apply_one(self, t: int, body, hdr: TxnHeader, events):
        """Apply one (sub)txn; returns (response, path) or raises _KErr."""
        node: ZNode | None
        if t == OP_CREATE or t == OP_CREATE2:
            cb: CreateTxn = body  # typed: the compiled build reads its fields natively
            path = cb.path
            owner = hdr.clientId if cb.ephemeral else 0
            node = self._create_node(path, cb.data, cb.acl, owner, cb.parentCVersion,
                                     hdr.zxid, hdr.time, events)
            if t == OP_CREATE:
                return PathResponse(path), path
            return Create2Response(path, node.stat(self.extended_types)), path
        if t == OP_CREATE_TTL or t == OP_CREATE_CONTAINER:
            owner = zn.ttl_owner(body.ttl) if t == OP_CREATE_TTL else zn.CONTAINER_OWNER
            node = self._create_node(body.path, body.data, body.acl, owner,
                                     body.parentCVersion, hdr.zxid, hdr.time, events)
            return Create2Response(body.path, node.stat(self.extended_types)), body.path
        if t == OP_DELETE or t == OP_DELETE_CONTAINER:
            db: DeleteTxn = body
            path = db.path
            self._delete_node(path, hdr.zxid, events)
            return None, path
        if t == OP_SET_DATA or t == OP_RECONFIG:
            sb: SetDataTxn = body
            path = sb.path
            data = sb.data
            node = self._nodes.get(path)
            if node is None:
                raise _KErr(Err.NONODE)
            if self._digest is not None:
                self._digest_touch(path, node)
            old_len = node.data_length
            if self._approx_size is not None:
                self._approx_size += len(data or b"") - old_len
            if self._quotas:
                prefix = qt.max_prefix(self._quotas, path)
                if prefix is not None:
                    self._quota_update(prefix, len(data or b"") - old_len, 0)
            node.data = data
            node.mtime = hdr.time
            node.mzxid = hdr.zxid
            node.version = sb.version
            events.add(_EV_DATA_CHANGED, path, node.acl)
            return StatResponse(node.stat(self.extended_types)), path
        if t == OP_SET_ACL:
            node = self._nodes.get(body.path)
            if node is None:
                raise _KErr(Err.NONODE)
            if self._digest is not None:
                self._digest_touch(body.path, node)
            node.aversion = body.version
            node.acl = intern_acl(body.acl)
            return StatResponse(node.stat(self.extended_types)), body.path
        if t == OP_CHECK:
            return None, body.path
        if t == OP_ERROR:
            raise _KErr(body.err)
        if t == OP_CREATE_SESSION:
            self.sessions[hdr.clientId] = body.timeOut
            return None, None
        if t == OP_CLOSE_SESSION:
            self._kill_session(hdr.clientId, hdr.zxid, body.paths2Delete if body is not None else None, events)
            return None, None
        if t > _KEEPER_MULTI_MIN:  # Keeper's sub-txns of a multi (tree/keeper.py)
            return keeper_apply(self, t, body, hdr, events)
        raise _KErr(Err.UNIMPLEMENTED)

    def _create_node(self, path: str, data: bytes | None, acl: Any, owner: int,
                     parent_cversion: int, zxid: int, time: int, events: EventList) -> ZNode:
        i = path.rfind("/")
        parent_path = path[:i] or "/"
        name = path[i + 1 :]
        parent = self._nodes.get(parent_path)
        if parent is None:
            raise _KErr(Err.NONODE)
        acl = intern_acl(acl or ())
        ch = parent.children
        if ch is not None and name in ch:
            raise _KErr(Err.NODEEXISTS)
        if self._digest is not None:
            self._digest_touch(parent_path, parent)
            self._dirty[path] = None
        if parent_cversion == -1:
            parent_cversion = _i32(parent.cversion + 1)
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
            parent.pzxid = zxid
        node = ZNode(data, acl, zxid, time, owner)
        self._add_child(parent, name)
        self._nodes[path] = node
        if self._approx_size is not None:
            self._approx_size += len(path) + node.data_length
        if owner:
            kind = zn.ephemeral_kind(owner, self.extended_types)
            if kind == zn.CONTAINER:
                self._containers[path] = None
            elif kind == zn.TTL:
                self._ttls[path] = None
            else:
                self._ephemerals.setdefault(owner, {})[path] = None
        if self._quotas or parent_path.startswith(_QUOTA_ROOT):
            self._quota_created(path, parent_path, name, node.data_length)
        events.add(_EV_CREATED, path, acl)
        events.add(_EV_CHILDREN_CHANGED, parent_path, parent.acl)
        return node

    def _delete_node(self, path: str, zxid: int, events) -> None:
        i = path.rfind("/")
        parent_path = path[:i] or "/"
        parent = self._nodes.get(parent_path)
        if parent is None:
            raise _KErr(Err.NONODE)
        if self._digest is not None and zxid > parent.pzxid:
            self._digest_touch(parent_path, parent)
        name = path[i + 1 :]
        self._remove_child(parent, name)
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        node = self._nodes.pop(path, None)
        if node is None:
            raise _KErr(Err.NONODE)
        if self._digest is not None:
            if path in self._dirty:
                del self._dirty[path]
            else:
                d = self._known.pop(path, None)
                self._digest -= node_digest(path, node) if d is None else d  # type: ignore[operator]
        if self._quotas or name == _LIMIT_NODE:
            self._quota_deleted(path, parent_path, name, node.data_length)
        if self._approx_size is not None:
            self._approx_size -= len(path) + node.data_length
        owner = node.ephemeral_owner
        if owner:
            kind = zn.ephemeral_kind(owner, self.extended_types)
            if kind == zn.CONTAINER:
                self._containers.pop(path, None)
            elif kind == zn.TTL:
                self._ttls.pop(path, None)
            else:
                es = self._ephemerals.get(owner)
                if es is not None:
                    es.pop(path, None)
        events.add(_EV_DELETED, path, node.acl)
        events.add(_EV_CHILDREN_CHANGED, parent_path, parent.acl)

    def _digest_touch(self, path: str, node: ZNode) -> None:
        """NodeHashMap.preChange: take the node's digest out until the next flush."""
        dirty = self._dirty
        if path not in dirty:
            d = self._known.pop(path, None)
            self._digest -= node_digest(path, node) if d is None else d  # type: ignore[operator]
            dirty[path] = None

    def _quota_created(self, path: str, parent_path: str, name: str, size: int) -> None:
        # DataTree.createNode's quota part
        if parent_path.startswith(_QUOTA_ROOT):
            if name == _LIMIT_NODE:
                self._quota_add(parent_path[_QROOT_LEN:])
            if name == _STAT_NODE:
                self._quota_recount(parent_path[_QROOT_LEN:])
        if self._quotas:
            prefix = qt.max_prefix(self._quotas, path)
            if prefix is not None:
                self._quota_update(prefix, size, 1)

    def _quota_deleted(self, path: str, parent_path: str, name: str, size: int) -> None:
        # DataTree.deleteNode's quota part
        if (name == _LIMIT_NODE and parent_path.startswith("/zookeeper")
                and len(parent_path) >= _QROOT_LEN):
            self._quotas.discard(qt.normalize(parent_path[_QROOT_LEN:]))
        if self._quotas:
            prefix = qt.max_prefix(self._quotas, path)
            if prefix is not None:
                self._quota_update(prefix, -size, -1)

    def _kill_session(self, sid: int, zxid: int, paths, events) -> None:
        local = self._ephemerals.pop(sid, None)
        self.sessions.pop(sid, None)
        if paths is not None:
            for p in paths:
                try:
                    self._delete_node(p, zxid, events)
                except _KErr:
                    pass
        if local:
            if paths is not None:
                for p in paths:
                    local.pop(p, None)
            for p in list(local):
                try:
                    self._delete_node(p, zxid, events)
                except _KErr:
                    pass

    def set_watches(self, relative_zxid: int, data_watches, exist_watches, child_watches,
                    persistent=(), persistent_recursive=(), watcher=None) -> list[tuple[int, str]]:
        """SetWatches/SetWatches2 after a reconnect (DataTree.setWatches).

        Registers what is still current and returns the events to send the
        client at once, in ZooKeeper's order: data watches (NODE_DELETED if the
        node is gone, NODE_DATA_CHANGED if mzxid > relative_zxid), exist watches
        (NODE_CREATED if the node now exists), child watches (NODE_DELETED, or
        NODE_CHILDREN_CHANGED if pzxid > relative_zxid); persistent ones are
        simply registered.
        """
        wm = self.watches
        out: list[tuple[int, str]] = []
        for path in data_watches or ():
            node = self.get_node(path)
            if node is None:
                out.append((EventType.NODE_DELETED, path))
            elif node.mzxid > relative_zxid:
                out.append((EventType.NODE_DATA_CHANGED, path))
            else:
                wm.add_data_watch(path, watcher)
        for path in exist_watches or ():
            if self.get_node(path) is not None:
                out.append((EventType.NODE_CREATED, path))
            else:
                wm.add_exist_watch(path, watcher)
        for path in child_watches or ():
            node = self.get_node(path)
            if node is None:
                out.append((EventType.NODE_DELETED, path))
            elif node.pzxid > relative_zxid:
                out.append((EventType.NODE_CHILDREN_CHANGED, path))
            else:
                wm.add_child_watch(path, watcher)
        for path in persistent or ():
            wm.add_persistent(path, watcher, False)
        for path in persistent_recursive or ():
            wm.add_persistent(path, watcher, True)
        return out

    # --------------------------------------------------------- housekeeping
    def expired_containers(self, now_ms: int) -> list[str]:
        """ContainerManager.getCandidates: empty used containers, expired TTL nodes."""
        out = []
        nodes = self._nodes
        for path in self._containers:
            node = nodes.get(path)
            if node is None or node.children:
                continue
            if node.cversion > 0:
                out.append(path)
            elif self.max_never_used_ms and now_ms - node.mtime > self.max_never_used_ms:
                out.append(path)
        for path in self._ttls:
            node = nodes.get(path)
            if node is None or node.children:
                continue
            owner = node.ephemeral_owner
            if zn.ephemeral_kind(owner, self.extended_types) == zn.TTL:
                ttl = zn.ttl_of(owner)
                if ttl and now_ms - node.mtime > ttl:
                    out.append(path)
        return out

    def __repr__(self) -> str:
        return f"DataTree(nodes={len(self._nodes)}, last_zxid={self.last_zxid:#x})"
