import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from linkgate.v1 import connection_service_pb2 as _connection_service_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SandboxFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SANDBOX_FAILURE_UNSPECIFIED: _ClassVar[SandboxFailure]
    SANDBOX_FAILURE_INSTITUTION_DOWN: _ClassVar[SandboxFailure]
    SANDBOX_FAILURE_RATE_LIMITED: _ClassVar[SandboxFailure]
    SANDBOX_FAILURE_PROVIDER_ERROR: _ClassVar[SandboxFailure]
SANDBOX_FAILURE_UNSPECIFIED: SandboxFailure
SANDBOX_FAILURE_INSTITUTION_DOWN: SandboxFailure
SANDBOX_FAILURE_RATE_LIMITED: SandboxFailure
SANDBOX_FAILURE_PROVIDER_ERROR: SandboxFailure

class SetConsentExpiryRequest(_message.Message):
    __slots__ = ("connection_id", "consent_expires_at")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    consent_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, connection_id: _Optional[str] = ..., consent_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetConsentExpiryResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: _connection_service_pb2.Connection
    def __init__(self, connection: _Optional[_Union[_connection_service_pb2.Connection, _Mapping]] = ...) -> None: ...

class ResetLoginRequest(_message.Message):
    __slots__ = ("connection_id",)
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    def __init__(self, connection_id: _Optional[str] = ...) -> None: ...

class ResetLoginResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: _connection_service_pb2.Connection
    def __init__(self, connection: _Optional[_Union[_connection_service_pb2.Connection, _Mapping]] = ...) -> None: ...

class FailNextRefreshRequest(_message.Message):
    __slots__ = ("connection_id", "failure")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    failure: SandboxFailure
    def __init__(self, connection_id: _Optional[str] = ..., failure: _Optional[_Union[SandboxFailure, str]] = ...) -> None: ...

class FailNextRefreshResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: _connection_service_pb2.Connection
    def __init__(self, connection: _Optional[_Union[_connection_service_pb2.Connection, _Mapping]] = ...) -> None: ...

class AddTransactionRequest(_message.Message):
    __slots__ = ("connection_id", "account_id", "amount", "date", "description", "pending")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    account_id: str
    amount: str
    date: str
    description: str
    pending: bool
    def __init__(self, connection_id: _Optional[str] = ..., account_id: _Optional[str] = ..., amount: _Optional[str] = ..., date: _Optional[str] = ..., description: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class AddTransactionResponse(_message.Message):
    __slots__ = ("transaction_id",)
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ...) -> None: ...

class ModifyTransactionRequest(_message.Message):
    __slots__ = ("connection_id", "transaction_id", "amount", "date", "description")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    transaction_id: str
    amount: str
    date: str
    description: str
    def __init__(self, connection_id: _Optional[str] = ..., transaction_id: _Optional[str] = ..., amount: _Optional[str] = ..., date: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ModifyTransactionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RemoveTransactionRequest(_message.Message):
    __slots__ = ("connection_id", "transaction_id")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    transaction_id: str
    def __init__(self, connection_id: _Optional[str] = ..., transaction_id: _Optional[str] = ...) -> None: ...

class RemoveTransactionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PostTransactionRequest(_message.Message):
    __slots__ = ("connection_id", "transaction_id", "date", "amount")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    transaction_id: str
    date: str
    amount: str
    def __init__(self, connection_id: _Optional[str] = ..., transaction_id: _Optional[str] = ..., date: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class PostTransactionResponse(_message.Message):
    __slots__ = ("transaction_id",)
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ...) -> None: ...
