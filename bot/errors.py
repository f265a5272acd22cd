"""The project's exceptions, one tree under StorebotError.

StorebotError
├── ConfigError                 a config key is missing or invalid (exit code 2)
├── ImportFileError             a master-data file has a bad row (exit code 2)
├── SchemaNotCurrent            the database is behind the code and database.auto_migrate is off
├── DomainError                 a business rule refused an action; .user_message is for the store user
│   ├── UnknownEntity           a store, SKU, staff member, transfer or task that does not exist
│   ├── NotAllowed              the actor lacks the right for this action
│   ├── InvalidQuantity         a quantity that is not a sane positive number
│   ├── InvalidInput            an id or word that cannot be valid (a barcode where an id belongs, too long)
│   └── InvalidState            the object is not in a state that allows the action (e.g. already approved)
└── WeComError                  anything from the WeCom edge
    ├── WeComCryptoError        signature, corp id, decryption or timestamp check failed
    ├── MalformedCallback       callback XML broken, with a DTD or entities, or missing a field WeCom sends
    ├── WeComConnectionError    network failure or timeout talking to WeCom
    └── WeComAPIError           WeCom answered with a non-zero errcode
"""

from __future__ import annotations


class StorebotError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(StorebotError):
    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"config {key}: {reason}")


class ImportFileError(StorebotError):
    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


class SchemaNotCurrent(StorebotError):
    def __init__(self, current: str | None, head: str | None) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"database schema is at {current or 'empty'}, code expects {head}: run `storebot db upgrade` "
            "(or set database.auto_migrate = true)"
        )


class DomainError(StorebotError):
    """A refusal with a Chinese sentence for the store user and an English one for logs and the API."""

    def __init__(self, message: str, user_message: str | None = None) -> None:
        self.user_message = user_message or message
        super().__init__(message)


class UnknownEntity(DomainError):
    def __init__(self, kind: str, ident: object, user_message: str | None = None) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"No {kind} by the id of {ident!r} was found", user_message or f"找不到{kind} {ident}")


class NotAllowed(DomainError):
    pass


class InvalidQuantity(DomainError):
    pass


class InvalidInput(DomainError):
    """Text that cannot be what it stands for: an id that is a barcode, too long or not a number."""


class InvalidState(DomainError):
    pass


class WeComError(StorebotError):
    pass


class WeComCryptoError(WeComError):
    pass


class MalformedCallback(WeComError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed WeCom callback: {reason}")


class WeComConnectionError(WeComError):
    pass


class WeComAPIError(WeComError):
    def __init__(self, errcode: int, errmsg: str, api: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        super().__init__(f"WeCom {api or 'API'} answered errcode {errcode}: {errmsg}")
