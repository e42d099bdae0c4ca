"""Errors of `zabby.client`, with kazoo's names (kazoo is not imported: same names,
our own classes), so code written against ``kazoo.exceptions`` reads the same.

Every ZooKeeper error code maps to one subclass of :class:`ZookeeperError`;
``exc.code`` is the ``zabby.wire.Err`` value.
"""

from __future__ import annotations

from zabby.wire import Err

__all__ = [
    "APIError", "AuthFailedError", "BadArgumentsError", "BadVersionError",
    "CancelledError", "ConfigurationError", "ConnectionClosedError", "ConnectionDropped",
    "ConnectionLoss", "DataInconsistency", "EphemeralOnLocalSessionError",
    "InvalidACLError", "InvalidCallbackError", "KazooException", "KazooTimeoutError",
    "LockTimeout", "MarshallingError", "NewConfigNoQuorumError",
    "NoAuthError", "NoChildrenForEphemeralsError", "NoNodeError", "NoWatcherError",
    "NodeExistsError", "NotEmptyError", "NotReadOnlyCallError", "OperationTimeoutError",
    "QuotaExceededError", "ReconfigDisabledError", "ReconfigInProcessError",
    "RequestTimeoutError", "RolledBackError", "RuntimeInconsistency", "SASLException",
    "SessionClosedRequireSaslError", "SessionExpiredError", "SessionMovedError",
    "SystemZookeeperError", "ThrottledOpError", "UnimplementedError",
    "UnknownSessionError", "ZookeeperError", "ZookeeperStoppedError", "error_for",
]


class KazooException(Exception):
    """Base of every error this client raises (kazoo's name, kept for drop-in code)."""


class ZookeeperError(KazooException):
    """The server answered with an error code (``code``); ``path`` is the request's."""

    code: int = Err.SYSTEMERROR

    def __init__(self, *args: object, path: str | None = None) -> None:
        super().__init__(*args)
        self.path = path


class CancelledError(KazooException):
    """A wait was cancelled."""


class ConfigurationError(KazooException):
    """Bad arguments to the client itself (host string, chroot, options)."""


class ZookeeperStoppedError(KazooException):
    """The client was stopped (or never started): no request can be sent."""


class ConnectionDropped(KazooException):
    """The connection dropped while a request was being sent."""


class LockTimeout(KazooException):
    """A lock was not acquired in time (used by the recipes)."""


class SASLException(KazooException):
    """SASL login failed on the client side."""


class KazooTimeoutError(KazooException, TimeoutError):
    """A bounded wait ran out (``start(timeout)``, a request with no server)."""


_BY_CODE: dict[int, type[ZookeeperError]] = {}


def _code(code: int):
    def deco(cls: type[ZookeeperError]) -> type[ZookeeperError]:
        cls.code = code
        _BY_CODE[code] = cls
        return cls
    return deco


@_code(Err.OK)
class RolledBackError(ZookeeperError):
    """An operation of a failed transaction that would have succeeded."""


@_code(Err.SYSTEMERROR)
class SystemZookeeperError(ZookeeperError):
    pass


@_code(Err.RUNTIMEINCONSISTENCY)
class RuntimeInconsistency(ZookeeperError):
    pass


@_code(Err.DATAINCONSISTENCY)
class DataInconsistency(ZookeeperError):
    pass


@_code(Err.CONNECTIONLOSS)
class ConnectionLoss(ZookeeperError):
    """The connection was lost before the reply came: the request may or may not
    have been applied. The session may still be alive (the client reconnects)."""


@_code(Err.MARSHALLINGERROR)
class MarshallingError(ZookeeperError):
    pass


@_code(Err.UNIMPLEMENTED)
class UnimplementedError(ZookeeperError):
    pass


@_code(Err.OPERATIONTIMEOUT)
class OperationTimeoutError(ZookeeperError):
    pass


@_code(Err.BADARGUMENTS)
class BadArgumentsError(ZookeeperError):
    pass


@_code(Err.UNKNOWNSESSION)
class UnknownSessionError(ZookeeperError):
    pass


@_code(Err.NEWCONFIGNOQUORUM)
class NewConfigNoQuorumError(ZookeeperError):
    pass


@_code(Err.RECONFIGINPROGRESS)
class ReconfigInProcessError(ZookeeperError):
    pass


@_code(Err.APIERROR)
class APIError(ZookeeperError):
    pass


@_code(Err.NONODE)
class NoNodeError(ZookeeperError):
    pass


@_code(Err.NOAUTH)
class NoAuthError(ZookeeperError):
    pass


@_code(Err.BADVERSION)
class BadVersionError(ZookeeperError):
    pass


@_code(Err.NOCHILDRENFOREPHEMERALS)
class NoChildrenForEphemeralsError(ZookeeperError):
    pass


@_code(Err.NODEEXISTS)
class NodeExistsError(ZookeeperError):
    pass


@_code(Err.NOTEMPTY)
class NotEmptyError(ZookeeperError):
    pass


@_code(Err.SESSIONEXPIRED)
class SessionExpiredError(ZookeeperError):
    """The session is gone: its ephemeral nodes and watches with it."""


@_code(Err.INVALIDCALLBACK)
class InvalidCallbackError(ZookeeperError):
    pass


@_code(Err.INVALIDACL)
class InvalidACLError(ZookeeperError):
    pass


@_code(Err.AUTHFAILED)
class AuthFailedError(ZookeeperError):
    pass


@_code(Err.SESSIONMOVED)
class SessionMovedError(ZookeeperError):
    pass


@_code(Err.NOTREADONLY)
class NotReadOnlyCallError(ZookeeperError):
    pass


@_code(Err.EPHEMERALONLOCALSESSION)
class EphemeralOnLocalSessionError(ZookeeperError):
    pass


@_code(Err.NOWATCHER)
class NoWatcherError(ZookeeperError):
    pass


@_code(Err.REQUESTTIMEOUT)
class RequestTimeoutError(ZookeeperError):
    pass


@_code(Err.RECONFIGDISABLED)
class ReconfigDisabledError(ZookeeperError):
    pass


@_code(Err.SESSIONCLOSEDREQUIRESASLAUTH)
class SessionClosedRequireSaslError(ZookeeperError):
    pass


@_code(Err.QUOTAEXCEEDED)
class QuotaExceededError(ZookeeperError):
    pass


@_code(Err.THROTTLEDOP)
class ThrottledOpError(ZookeeperError):
    pass


class ConnectionClosedError(SessionExpiredError):
    """The client was closed by its user: the session ended on purpose."""


def error_for(code: int, path: str | None = None) -> ZookeeperError:
    """The exception for a ZooKeeper error code (an unknown code: ZookeeperError)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        exc = ZookeeperError(f"unknown error code {code}", path=path)
        exc.code = code
        return exc
    return cls(f"{cls.__name__} ({code}){': ' + path if path else ''}", path=path)


class WriterNotClosedException(KazooException):
    """A writer of a lock-protected resource did not close (kazoo's recipes)."""


# kazoo's older aliases
ConnectionLossException = ConnectionLoss
MarshallingErrorException = MarshallingError
SystemErrorException = SystemZookeeperError
RuntimeInconsistencyException = RuntimeInconsistency
DataInconsistencyException = DataInconsistency
UnimplementedException = UnimplementedError
OperationTimeoutException = OperationTimeoutError
BadArgumentsException = BadArgumentsError
ApiErrorException = APIError
NoNodeException = NoNodeError
NoAuthException = NoAuthError
BadVersionException = BadVersionError
NoChildrenForEphemeralsException = NoChildrenForEphemeralsError
NodeExistsException = NodeExistsError
InvalidACLException = InvalidACLError
AuthFailedException = AuthFailedError
NotEmptyException = NotEmptyError
SessionExpiredException = SessionExpiredError
InvalidCallbackException = InvalidCallbackError

__all__ += [
    "WriterNotClosedException", "ConnectionLossException", "MarshallingErrorException",
    "SystemErrorException", "RuntimeInconsistencyException", "DataInconsistencyException",
    "UnimplementedException", "OperationTimeoutException", "BadArgumentsException",
    "ApiErrorException", "NoNodeException", "NoAuthException", "BadVersionException",
    "NoChildrenForEphemeralsException", "NodeExistsException", "InvalidACLException",
    "AuthFailedException", "NotEmptyException", "SessionExpiredException",
    "InvalidCallbackException",
]
