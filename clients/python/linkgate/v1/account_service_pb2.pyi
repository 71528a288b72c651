from linkgate.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccountType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_TYPE_UNSPECIFIED: _ClassVar[AccountType]
    ACCOUNT_TYPE_CHECKING: _ClassVar[AccountType]
    ACCOUNT_TYPE_SAVINGS: _ClassVar[AccountType]
    ACCOUNT_TYPE_CREDIT_CARD: _ClassVar[AccountType]
    ACCOUNT_TYPE_LOAN: _ClassVar[AccountType]
    ACCOUNT_TYPE_BROKERAGE_CASH: _ClassVar[AccountType]
    ACCOUNT_TYPE_UTILITY: _ClassVar[AccountType]
    ACCOUNT_TYPE_OTHER: _ClassVar[AccountType]
ACCOUNT_TYPE_UNSPECIFIED: AccountType
ACCOUNT_TYPE_CHECKING: AccountType
ACCOUNT_TYPE_SAVINGS: AccountType
ACCOUNT_TYPE_CREDIT_CARD: AccountType
ACCOUNT_TYPE_LOAN: AccountType
ACCOUNT_TYPE_BROKERAGE_CASH: AccountType
ACCOUNT_TYPE_UTILITY: AccountType
ACCOUNT_TYPE_OTHER: AccountType

class Balances(_message.Message):
    __slots__ = ("current", "available", "limit")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    current: _common_pb2.Money
    available: _common_pb2.Money
    limit: _common_pb2.Money
    def __init__(self, current: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., available: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., limit: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("id", "connection_id", "type", "name", "mask", "currency", "balances")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    id: str
    connection_id: str
    type: AccountType
    name: str
    mask: str
    currency: str
    balances: Balances
    def __init__(self, id: _Optional[str] = ..., connection_id: _Optional[str] = ..., type: _Optional[_Union[AccountType, str]] = ..., name: _Optional[str] = ..., mask: _Optional[str] = ..., currency: _Optional[str] = ..., balances: _Optional[_Union[Balances, _Mapping]] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("id", "account_id", "amount", "date", "description", "pending", "pending_transaction_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    PENDING_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    account_id: str
    amount: _common_pb2.Money
    date: str
    description: str
    pending: bool
    pending_transaction_id: str
    def __init__(self, id: _Optional[str] = ..., account_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., date: _Optional[str] = ..., description: _Optional[str] = ..., pending: _Optional[bool] = ..., pending_transaction_id: _Optional[str] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ("connection_id", "page_size", "page_token")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    page_size: int
    page_token: str
    def __init__(self, connection_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts", "next_page_token")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListAccountTransactionsRequest(_message.Message):
    __slots__ = ("connection_id", "account_id", "start_date", "end_date", "page_size", "page_token")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    account_id: str
    start_date: str
    end_date: str
    page_size: int
    page_token: str
    def __init__(self, connection_id: _Optional[str] = ..., account_id: _Optional[str] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccountTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SyncAccountTransactionsRequest(_message.Message):
    __slots__ = ("connection_id", "account_id", "cursor", "page_size")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    account_id: str
    cursor: str
    page_size: int
    def __init__(self, connection_id: _Optional[str] = ..., account_id: _Optional[str] = ..., cursor: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class SyncAccountTransactionsResponse(_message.Message):
    __slots__ = ("added", "modified", "removed", "next_cursor", "has_more")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedCompositeFieldContainer[Transaction]
    modified: _containers.RepeatedCompositeFieldContainer[Transaction]
    removed: _containers.RepeatedScalarFieldContainer[str]
    next_cursor: str
    has_more: bool
    def __init__(self, added: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., modified: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ..., next_cursor: _Optional[str] = ..., has_more: _Optional[bool] = ...) -> None: ...
