"""ACL helpers with kazoo's names (``kazoo.security``)."""

from __future__ import annotations

import base64
import hashlib

from zabby.wire import ACL, Id, Perm

__all__ = ["CREATOR_ALL_ACL", "OPEN_ACL_UNSAFE", "READ_ACL_UNSAFE", "make_acl",
           "make_digest_acl", "make_digest_acl_credential"]

OPEN_ACL_UNSAFE = [ACL(Perm.ALL, Id("world", "anyone"))]
CREATOR_ALL_ACL = [ACL(Perm.ALL, Id("auth", ""))]
READ_ACL_UNSAFE = [ACL(Perm.READ, Id("world", "anyone"))]


def make_digest_acl_credential(username: str, password: str) -> str:
    """``user:base64(sha1(user:password))``, the id of a digest ACL."""
    digest = hashlib.sha1(f"{username}:{password}".encode()).digest()
    return f"{username}:{base64.b64encode(digest).decode()}"


def make_acl(scheme: str, credential: str, read: bool = False, write: bool = False,
             create: bool = False, delete: bool = False, admin: bool = False,
             all: bool = False) -> ACL:  # noqa: A002 - kazoo's argument name
    if all:
        perms = int(Perm.ALL)
    else:
        perms = ((Perm.READ if read else 0) | (Perm.WRITE if write else 0)
                 | (Perm.CREATE if create else 0) | (Perm.DELETE if delete else 0)
                 | (Perm.ADMIN if admin else 0))
    return ACL(int(perms), Id(scheme, credential))


def make_digest_acl(username: str, password: str, read: bool = False, write: bool = False,
                    create: bool = False, delete: bool = False, admin: bool = False,
                    all: bool = False) -> ACL:  # noqa: A002
    return make_acl("digest", make_digest_acl_credential(username, password), read=read,
                    write=write, create=create, delete=delete, admin=admin, all=all)
