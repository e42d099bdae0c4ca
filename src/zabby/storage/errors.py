"""Storage exceptions."""

from __future__ import annotations

__all__ = ["CorruptDataError", "StorageError"]


class StorageError(Exception):
    """A write, fsync or other file operation failed.

    Raised by `TxnLog.write_batch`: none of the txns of that batch may be
    reported durable (the log's `last_zxid` did not move).
    """


class CorruptDataError(StorageError):
    """Data on disk is damaged in a way recovery must not paper over.

    The message names the file, the byte offset and the zxid where known; the
    server refuses to start with it (`zabby check --repair` can truncate).
    """

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None,
                 zxid: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.zxid = zxid
