"""ClickHouse Keeper's extension opcodes against the DataTree (prepare and reads).

How the writes are logged (so snapshots, log replay and followers need nothing new):

* CreateIfNotExists: a plain ``create`` txn when it creates; when the node is already
  there, a ``check`` txn of the path (applies nothing, as Keeper changes nothing).
* RemoveRecursive: one ``multi`` txn of ``delete`` sub-txns, children before parents,
  so the whole subtree goes in one atomic txn (an empty multi when there is nothing
  to remove).
* Inside a multi (as Keeper allows) each is a sub-txn of its own opcode, so the multi's
  reply names it as Keeper's does: CheckNotExists 501 (a check body, applies nothing),
  CreateIfNotExists 502 (a create's fields and whether it created), RemoveRecursive 503
  (the paths it deletes, children first).

Error codes and ACL checks are Keeper's (``KeeperStorage``): RemoveRecursive needs
DELETE on the parent and on every node it removes, answers NOTEMPTY when the subtree
holds more nodes than its limit, and OK when the node does not exist; CreateIfNotExists
refuses sequential flags (BADARGUMENTS); CheckNotExists answers NODEEXISTS when the
node exists (with the given version, or any with -1), NOAUTH when it exists without
READ; FilteredList needs READ on the node and, when it filters, on every child
(NOAUTH otherwise); ListRecursive lists, breadth first, the descendants the caller
may READ, at most its limit of them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..wire.constants import (
    ERR_NOAUTH,
    ERR_NONODE,
    ERR_OK,
    PERM_CREATE,
    PERM_DELETE,
    PERM_READ,
    CreateMode,
    Err,
    Op,
)
from ..wire.jute import Record
from ..wire.keeper import (
    CHECK_NOT_EXISTS,
    CREATE_IF_NOT_EXISTS,
    FILTERED_LIST,
    LIST_ALL,
    LIST_EPHEMERAL_ONLY,
    LIST_PERSISTENT_ONLY,
    LIST_RECURSIVE,
    REMOVE_RECURSIVE,
    ListRecursiveResponse,
)
from ..wire.records import ErrorResponse, GetChildren2Response, PathResponse
from . import znode as zn
from .acl import check_perm
from .paths import is_valid_path
from .txn import (
    CheckVersionTxn,
    CreateIfNotExistsTxn,
    DeleteTxn,
    MultiTxn,
    RemoveRecursiveTxn,
)

__all__ = ["KEEPER_MULTI_OPS", "KEEPER_PREP", "SYSTEM_PATH", "keeper_apply",
           "keeper_multi_prep", "keeper_multi_read", "keeper_read"]

SYSTEM_PATH = "/keeper"  # Keeper's own subtree: virtual here, never written by clients
_SPECIAL = frozenset({"/zookeeper", "/zookeeper/quota", "/zookeeper/config"})
_PLAIN_MODES = (int(CreateMode.PERSISTENT), int(CreateMode.EPHEMERAL))


def _err(tree, code):
    return tree.KErr(code)


def _is_system(path: str) -> bool:
    return path == SYSTEM_PATH or path.startswith(SYSTEM_PATH + "/")


# ------------------------------------------------------------------ writes
def prep_create_if_not_exists(tree, req, ctx):
    """A create, or a no-op check txn when the node exists."""
    if req.flags not in _PLAIN_MODES:
        # Keeper refuses sequential nodes here (other kinds too), after it has checked
        # the parent: that it exists, may be created in, and is not ephemeral
        path = req.path or ""
        i = path.rfind("/")
        if i >= 0 and "\0" not in path:
            parent = tree._record(path[:i] or "/")
            if not check_perm(parent.acl, PERM_CREATE, ctx.auth):
                raise _err(tree, Err.NOAUTH)
            if zn.ephemeral_kind(parent.ephemeral_owner, tree.extended_types) == zn.NORMAL:
                raise _err(tree, Err.NOCHILDRENFOREPHEMERALS)
        raise _err(tree, Err.BADARGUMENTS)
    if req.path is not None and _is_system(req.path):
        raise _err(tree, Err.BADARGUMENTS)
    try:
        return tree._prep_create(int(Op.CREATE), req, ctx)
    except tree.KErr as e:
        if e.err != Err.NODEEXISTS:
            raise
    return int(Op.CHECK), CheckVersionTxn(req.path, -1)


def _plan_remove(tree, req, ctx):
    """(the subtree's paths parents first, the parent's pending record), or None when
    there is nothing to remove; raises Keeper's errors before changing anything."""
    path = req.path
    if path is None:
        raise _err(tree, Err.MARSHALLINGERROR)
    if not is_valid_path(path) or path == "/" or _is_system(path):
        raise _err(tree, Err.BADARGUMENTS)
    parent_path = tree._parent_for_delete(path)  # refuses /zookeeper and its nodes
    try:
        parent = tree._record(parent_path)
    except tree.KErr:
        return None  # no parent: nothing to do (Keeper: OK)
    if not check_perm(parent.acl, PERM_DELETE, ctx.auth):
        raise _err(tree, Err.NOAUTH)
    try:
        tree._record(path)
    except tree.KErr:
        return None  # no node: OK, the parent unchanged
    order = _subtree(tree, path)  # parents before children
    if len(order) > req.limit:
        raise _err(tree, Err.NOTEMPTY)
    for p in order:
        if p in _SPECIAL:
            raise _err(tree, Err.BADARGUMENTS)
        if not check_perm(tree._record(p).acl, PERM_DELETE, ctx.auth):
            raise _err(tree, Err.NOAUTH)
    return order, parent


def _record_removal(tree, order, parent, zxid) -> list[str]:
    """Pending deletes of the subtree; its paths, children first."""
    root = order[0]
    out = []
    for p in reversed(order):
        if p == root:
            tree._record_delete(parent, p, zxid)
        else:
            tree._add_change(tree.Change(zxid, p, False, child_count=-1))
        out.append(p)
    return out


def prep_remove_recursive(tree, req, ctx):
    """The subtree at req.path as one multi of deletes (children first)."""
    plan = _plan_remove(tree, req, ctx)
    if plan is None:
        return int(Op.MULTI), MultiTxn.of([])
    paths = _record_removal(tree, *plan, ctx.zxid)
    return int(Op.MULTI), MultiTxn.of([(int(Op.DELETE), DeleteTxn(p)) for p in paths])


def _subtree(tree, path: str) -> list[str]:
    """Every path of the subtree at `path` as prepared (applied tree plus pending
    creates and deletes), parents before children."""
    nodes = tree._nodes
    pending = tree._outstanding_by_path
    prefix = path + "/"
    extra: dict[str, list[str]] = {}  # parent -> pending-created children
    gone: set[str] = set()
    if pending:
        for p, c in pending.items():
            if p.startswith(prefix):
                if c.exists:
                    if p not in nodes:
                        i = p.rfind("/")
                        extra.setdefault(p[:i], []).append(p)
                else:
                    gone.add(p)
    out = [path]
    i = 0
    while i < len(out):
        p = out[i]
        i += 1
        node = nodes.get(p)
        ch = node.children if node is not None else None
        if ch:
            for name in ch:
                cp = p + "/" + name
                if cp not in gone:
                    out.append(cp)
        for cp in extra.get(p, ()):
            if cp not in gone:
                out.append(cp)
    return out


def prep_check_not_exists(tree, req, ctx):
    """checkNotExists as a multi op: NODEEXISTS if the node exists (at that version)."""
    path = req.path
    if path is None:
        raise _err(tree, Err.MARSHALLINGERROR)
    if not is_valid_path(path):
        raise _err(tree, Err.BADARGUMENTS)
    c = tree._outstanding_by_path.get(path)
    node = (c if c.exists else None) if c is not None else tree._nodes.get(path)
    if node is not None:
        if not check_perm(node.acl, PERM_READ, ctx.auth):
            raise _err(tree, Err.NOAUTH)
        if req.version == -1 or req.version == node.version:
            raise _err(tree, Err.NODEEXISTS)
    return CHECK_NOT_EXISTS, CheckVersionTxn(path, req.version)


# on their own (DataTree._prep)
KEEPER_PREP: dict[int, Callable[..., tuple[int, Record]]] = {
    CREATE_IF_NOT_EXISTS: prep_create_if_not_exists,
    REMOVE_RECURSIVE: prep_remove_recursive,
}
KEEPER_MULTI_OPS = frozenset({CHECK_NOT_EXISTS, CREATE_IF_NOT_EXISTS, REMOVE_RECURSIVE})


def keeper_multi_prep(tree, op: int, req, ctx):
    """A Keeper op inside a write multi: its sub-txn (types 501-503)."""
    if op == CHECK_NOT_EXISTS:
        return prep_check_not_exists(tree, req, ctx)
    if op == CREATE_IF_NOT_EXISTS:
        t, txn = prep_create_if_not_exists(tree, req, ctx)
        if t == Op.CHECK:  # there already
            return CREATE_IF_NOT_EXISTS, CreateIfNotExistsTxn(req.path, None, [], False, -1, False)
        return CREATE_IF_NOT_EXISTS, CreateIfNotExistsTxn(
            txn.path, txn.data, txn.acl, txn.ephemeral, txn.parentCVersion, True)
    if op == REMOVE_RECURSIVE:
        plan = _plan_remove(tree, req, ctx)
        if plan is None:
            return REMOVE_RECURSIVE, RemoveRecursiveTxn([])
        # a later op of the multi may fail: the rollback must restore what was pending
        # for every node of the subtree, not only for the path and its parent
        saved = getattr(tree, "_multi_saved", None)
        if saved is not None:
            pending = tree._outstanding_by_path
            for p in plan[0]:
                c = pending.get(p)
                if c is not None:
                    saved.setdefault(p, c)
        order, parent = plan
        return REMOVE_RECURSIVE, RemoveRecursiveTxn(_record_removal(tree, order, parent, ctx.zxid))
    raise _err(tree, Err.UNIMPLEMENTED)


def keeper_apply(tree, t: int, body, hdr, events):
    """Apply a Keeper sub-txn of a multi: (response, path), as DataTree._apply_one."""
    if t == CHECK_NOT_EXISTS:
        return None, body.path
    if t == CREATE_IF_NOT_EXISTS:
        if body.created:
            owner = hdr.clientId if body.ephemeral else 0
            tree._create_node(body.path, body.data, body.acl, owner, body.parentCVersion,
                              hdr.zxid, hdr.time, events)
        return PathResponse(body.path), body.path
    if t == REMOVE_RECURSIVE:
        for p in body.paths or ():
            tree._delete_node(p, hdr.zxid, events)
        return None, None
    raise _err(tree, Err.UNIMPLEMENTED)


# ------------------------------------------------------------------- reads
def keeper_read(tree, op: int, body, auth, watcher=None):
    """(err, response) for FilteredList, CheckNotExists and ListRecursive."""
    path = body.path
    if path is None:
        return int(Err.MARSHALLINGERROR), None
    if op == CHECK_NOT_EXISTS:
        node = tree.get_node(path)
        if node is None:
            return ERR_OK, None
        if not check_perm(node.acl, PERM_READ, auth):
            return ERR_NOAUTH, None
        if body.version == -1 or body.version == node.version:
            return int(Err.NODEEXISTS), None
        return ERR_OK, None
    node = tree.get_node(path)
    if node is None:
        return ERR_NONODE, None
    if not check_perm(node.acl, PERM_READ, auth):
        return ERR_NOAUTH, None
    if op == FILTERED_LIST:
        return _filtered_list(tree, path, node, body, auth, watcher)
    if op == LIST_RECURSIVE:
        return ERR_OK, ListRecursiveResponse(_list_recursive(tree, path, body.limit, auth))
    return int(Err.UNIMPLEMENTED), None


def keeper_multi_read(tree, req, auth):
    """FilteredList inside a multiRead: its result, as Keeper's a List (12) one."""
    err, resp = keeper_read(tree, FILTERED_LIST, req, auth)  # no watch in a multiRead
    if err:
        return int(Op.ERROR), err, ErrorResponse(err)
    return int(Op.GET_CHILDREN2), 0, resp


def _filtered_list(tree, path, node, body, auth, watcher):
    names = tree.children_of(node)
    kind = body.listType
    if kind != LIST_ALL:
        ext = tree.extended_types
        nodes = tree._nodes
        prefix = "/" if path == "/" else path + "/"
        kept = []
        for name in names:
            child = nodes[prefix + name]
            if not check_perm(child.acl, PERM_READ, auth):
                return ERR_NOAUTH, None  # the ephemeral flag is not for unreaders
            ephemeral = zn.ephemeral_kind(child.ephemeral_owner, ext) == zn.NORMAL
            if ephemeral and kind == LIST_PERSISTENT_ONLY:
                continue
            if not ephemeral and kind == LIST_EPHEMERAL_ONLY:
                continue
            kept.append(name)
        names = kept
    if watcher is not None and body.watch:
        tree.watches.add_child_watch(path, watcher)
    return ERR_OK, GetChildren2Response(list(names), node.stat(tree.extended_types))


def _list_recursive(tree, path: str, limit: int, auth) -> list[str]:
    nodes = tree._nodes
    out = [path]
    i = 0
    while i < len(out):
        p = out[i]
        i += 1
        node = nodes.get(p)
        ch = node.children if node is not None else None
        if not ch:
            continue
        prefix = "/" if p == "/" else p + "/"
        for name in tree.children_of(node):
            cp = prefix + name
            if not check_perm(nodes[cp].acl, PERM_READ, auth):
                continue
            if len(out) - 1 >= limit:
                return out[1:]
            out.append(cp)
    return out[1:]


# keep the module's names in one place for the server
KEEPER_READS = frozenset({FILTERED_LIST, CHECK_NOT_EXISTS, LIST_RECURSIVE})
KEEPER_WRITES = frozenset({CREATE_IF_NOT_EXISTS, REMOVE_RECURSIVE})
LIST_FILTERS = (LIST_ALL, LIST_PERSISTENT_ONLY, LIST_EPHEMERAL_ONLY)
