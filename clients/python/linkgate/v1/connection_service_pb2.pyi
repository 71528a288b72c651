import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from linkgate.v1 import common_pb2 as _common_pb2
from linkgate.v1 import error_reason_pb2 as _error_reason_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_STATE_UNSPECIFIED: _ClassVar[ConnectionState]
    CONNECTION_STATE_PENDING: _ClassVar[ConnectionState]
    CONNECTION_STATE_READY: _ClassVar[ConnectionState]
    CONNECTION_STATE_REFRESHING: _ClassVar[ConnectionState]
    CONNECTION_STATE_STALE: _ClassVar[ConnectionState]
    CONNECTION_STATE_LOGIN_REQUIRED: _ClassVar[ConnectionState]
    CONNECTION_STATE_ERROR: _ClassVar[ConnectionState]
    CONNECTION_STATE_DISCONNECTED: _ClassVar[ConnectionState]
    CONNECTION_STATE_DELETED: _ClassVar[ConnectionState]

class ConnectionEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_EVENT_TYPE_UNSPECIFIED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_STATE_CHANGED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_LOGIN_REPAIRED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_CONSENT_EXPIRING: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_CONSENT_EXPIRED: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_NEW_ACCOUNTS: _ClassVar[ConnectionEventType]
    CONNECTION_EVENT_TYPE_DATA_UPDATED: _ClassVar[ConnectionEventType]
CONNECTION_STATE_UNSPECIFIED: ConnectionState
CONNECTION_STATE_PENDING: ConnectionState
CONNECTION_STATE_READY: ConnectionState
CONNECTION_STATE_REFRESHING: ConnectionState
CONNECTION_STATE_STALE: ConnectionState
CONNECTION_STATE_LOGIN_REQUIRED: ConnectionState
CONNECTION_STATE_ERROR: ConnectionState
CONNECTION_STATE_DISCONNECTED: ConnectionState
CONNECTION_STATE_DELETED: ConnectionState
CONNECTION_EVENT_TYPE_UNSPECIFIED: ConnectionEventType
CONNECTION_EVENT_TYPE_STATE_CHANGED: ConnectionEventType
CONNECTION_EVENT_TYPE_LOGIN_REPAIRED: ConnectionEventType
CONNECTION_EVENT_TYPE_CONSENT_EXPIRING: ConnectionEventType
CONNECTION_EVENT_TYPE_CONSENT_EXPIRED: ConnectionEventType
CONNECTION_EVENT_TYPE_NEW_ACCOUNTS: ConnectionEventType
CONNECTION_EVENT_TYPE_DATA_UPDATED: ConnectionEventType

class ConnectionError(_message.Message):
    __slots__ = ("reason", "message", "retryable", "user_action_required")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    USER_ACTION_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    reason: _error_reason_pb2.ErrorReason
    message: str
    retryable: bool
    user_action_required: bool
    def __init__(self, reason: _Optional[_Union[_error_reason_pb2.ErrorReason, str]] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ..., user_action_required: _Optional[bool] = ...) -> None: ...

class ProductStatus(_message.Message):
    __slots__ = ("product", "state", "refreshed_at", "last_attempted_at")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REFRESHED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPTED_AT_FIELD_NUMBER: _ClassVar[int]
    product: _common_pb2.Product
    state: _common_pb2.ProductState
    refreshed_at: _timestamp_pb2.Timestamp
    last_attempted_at: _timestamp_pb2.Timestamp
    def __init__(self, product: _Optional[_Union[_common_pb2.Product, str]] = ..., state: _Optional[_Union[_common_pb2.ProductState, str]] = ..., refreshed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Connection(_message.Message):
    __slots__ = ("id", "provider", "institution_id", "institution_name", "external_user_id", "state", "error", "products", "created_at", "updated_at", "last_synced_at", "link_session_id", "consent_expires_at", "duplicate_of_connection_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_NAME_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNCED_AT_FIELD_NUMBER: _ClassVar[int]
    LINK_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    institution_id: str
    institution_name: str
    external_user_id: str
    state: ConnectionState
    error: ConnectionError
    products: _containers.RepeatedCompositeFieldContainer[ProductStatus]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    last_synced_at: _timestamp_pb2.Timestamp
    link_session_id: str
    consent_expires_at: _timestamp_pb2.Timestamp
    duplicate_of_connection_id: str
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., institution_id: _Optional[str] = ..., institution_name: _Optional[str] = ..., external_user_id: _Optional[str] = ..., state: _Optional[_Union[ConnectionState, str]] = ..., error: _Optional[_Union[ConnectionError, _Mapping]] = ..., products: _Optional[_Iterable[_Union[ProductStatus, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_synced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., link_session_id: _Optional[str] = ..., consent_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duplicate_of_connection_id: _Optional[str] = ...) -> None: ...

class RecordChangeCounts(_message.Message):
    __slots__ = ("added", "modified", "removed")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    added: int
    modified: int
    removed: int
    def __init__(self, added: _Optional[int] = ..., modified: _Optional[int] = ..., removed: _Optional[int] = ...) -> None: ...

class DataChanges(_message.Message):
    __slots__ = ("accounts", "transactions", "portfolios", "positions", "portfolio_transactions", "statements")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIOS_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    STATEMENTS_FIELD_NUMBER: _ClassVar[int]
    accounts: RecordChangeCounts
    transactions: RecordChangeCounts
    portfolios: RecordChangeCounts
    positions: RecordChangeCounts
    portfolio_transactions: RecordChangeCounts
    statements: RecordChangeCounts
    def __init__(self, accounts: _Optional[_Union[RecordChangeCounts, _Mapping]] = ..., transactions: _Optional[_Union[RecordChangeCounts, _Mapping]] = ..., portfolios: _Optional[_Union[RecordChangeCounts, _Mapping]] = ..., positions: _Optional[_Union[RecordChangeCounts, _Mapping]] = ..., portfolio_transactions: _Optional[_Union[RecordChangeCounts, _Mapping]] = ..., statements: _Optional[_Union[RecordChangeCounts, _Mapping]] = ...) -> None: ...

class ConnectionEvent(_message.Message):
    __slots__ = ("event_id", "connection", "occurred_at", "snapshot", "type", "data_changes", "new_account_ids")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_CHANGES_FIELD_NUMBER: _ClassVar[int]
    NEW_ACCOUNT_IDS_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    connection: Connection
    occurred_at: _timestamp_pb2.Timestamp
    snapshot: bool
    type: ConnectionEventType
    data_changes: DataChanges
    new_account_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_id: _Optional[int] = ..., connection: _Optional[_Union[Connection, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot: _Optional[bool] = ..., type: _Optional[_Union[ConnectionEventType, str]] = ..., data_changes: _Optional[_Union[DataChanges, _Mapping]] = ..., new_account_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetConnectionRequest(_message.Message):
    __slots__ = ("connection_id",)
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    def __init__(self, connection_id: _Optional[str] = ...) -> None: ...

class GetConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class ListConnectionsRequest(_message.Message):
    __slots__ = ("external_user_id", "provider", "state", "page_size", "page_token")
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    external_user_id: str
    provider: str
    state: ConnectionState
    page_size: int
    page_token: str
    def __init__(self, external_user_id: _Optional[str] = ..., provider: _Optional[str] = ..., state: _Optional[_Union[ConnectionState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConnectionsResponse(_message.Message):
    __slots__ = ("connections", "next_page_token")
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connections: _containers.RepeatedCompositeFieldContainer[Connection]
    next_page_token: str
    def __init__(self, connections: _Optional[_Iterable[_Union[Connection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RefreshConnectionRequest(_message.Message):
    __slots__ = ("connection_id", "request_id", "products")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    request_id: str
    products: _containers.RepeatedScalarFieldContainer[_common_pb2.Product]
    def __init__(self, connection_id: _Optional[str] = ..., request_id: _Optional[str] = ..., products: _Optional[_Iterable[_Union[_common_pb2.Product, str]]] = ...) -> None: ...

class RefreshConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class DeleteConnectionRequest(_message.Message):
    __slots__ = ("connection_id", "request_id")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    request_id: str
    def __init__(self, connection_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class WatchConnectionRequest(_message.Message):
    __slots__ = ("connection_id", "after_event_id")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    after_event_id: int
    def __init__(self, connection_id: _Optional[str] = ..., after_event_id: _Optional[int] = ...) -> None: ...

class WatchConnectionResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: ConnectionEvent
    def __init__(self, event: _Optional[_Union[ConnectionEvent, _Mapping]] = ...) -> None: ...

class WatchConnectionsRequest(_message.Message):
    __slots__ = ("external_user_id", "provider", "after_event_id")
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    external_user_id: str
    provider: str
    after_event_id: int
    def __init__(self, external_user_id: _Optional[str] = ..., provider: _Optional[str] = ..., after_event_id: _Optional[int] = ...) -> None: ...

class WatchConnectionsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: ConnectionEvent
    def __init__(self, event: _Optional[_Union[ConnectionEvent, _Mapping]] = ...) -> None: ...

class EraseEndUserRequest(_message.Message):
    __slots__ = ("external_user_id",)
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    external_user_id: str
    def __init__(self, external_user_id: _Optional[str] = ...) -> None: ...

class EraseEndUserResponse(_message.Message):
    __slots__ = ("connections_erased", "link_sessions_erased", "public_tokens_erased", "revocations_failed", "complete", "erasure_id")
    CONNECTIONS_ERASED_FIELD_NUMBER: _ClassVar[int]
    LINK_SESSIONS_ERASED_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_TOKENS_ERASED_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FAILED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    ERASURE_ID_FIELD_NUMBER: _ClassVar[int]
    connections_erased: int
    link_sessions_erased: int
    public_tokens_erased: int
    revocations_failed: int
    complete: bool
    erasure_id: str
    def __init__(self, connections_erased: _Optional[int] = ..., link_sessions_erased: _Optional[int] = ..., public_tokens_erased: _Optional[int] = ..., revocations_failed: _Optional[int] = ..., complete: _Optional[bool] = ..., erasure_id: _Optional[str] = ...) -> None: ...
