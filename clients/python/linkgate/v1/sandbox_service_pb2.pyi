import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from linkgate.v1 import connection_service_pb2 as _connection_service_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
