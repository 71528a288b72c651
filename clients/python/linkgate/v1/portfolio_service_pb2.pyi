from linkgate.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PortfolioType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PORTFOLIO_TYPE_UNSPECIFIED: _ClassVar[PortfolioType]
    PORTFOLIO_TYPE_BROKERAGE: _ClassVar[PortfolioType]
    PORTFOLIO_TYPE_RETIREMENT: _ClassVar[PortfolioType]
    PORTFOLIO_TYPE_FUND: _ClassVar[PortfolioType]
    PORTFOLIO_TYPE_OTHER: _ClassVar[PortfolioType]

class AssetType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSET_TYPE_UNSPECIFIED: _ClassVar[AssetType]
    ASSET_TYPE_EQUITY: _ClassVar[AssetType]
    ASSET_TYPE_ETF: _ClassVar[AssetType]
    ASSET_TYPE_FUND: _ClassVar[AssetType]
    ASSET_TYPE_BOND: _ClassVar[AssetType]
    ASSET_TYPE_CASH: _ClassVar[AssetType]
    ASSET_TYPE_OTHER: _ClassVar[AssetType]

class PortfolioTransactionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PORTFOLIO_TRANSACTION_TYPE_UNSPECIFIED: _ClassVar[PortfolioTransactionType]
    PORTFOLIO_TRANSACTION_TYPE_BUY: _ClassVar[PortfolioTransactionType]
    PORTFOLIO_TRANSACTION_TYPE_SELL: _ClassVar[PortfolioTransactionType]
    PORTFOLIO_TRANSACTION_TYPE_DIVIDEND: _ClassVar[PortfolioTransactionType]
    PORTFOLIO_TRANSACTION_TYPE_FEE: _ClassVar[PortfolioTransactionType]
    PORTFOLIO_TRANSACTION_TYPE_DEPOSIT: _ClassVar[PortfolioTransactionType]
    PORTFOLIO_TRANSACTION_TYPE_WITHDRAWAL: _ClassVar[PortfolioTransactionType]
    PORTFOLIO_TRANSACTION_TYPE_OTHER: _ClassVar[PortfolioTransactionType]
PORTFOLIO_TYPE_UNSPECIFIED: PortfolioType
PORTFOLIO_TYPE_BROKERAGE: PortfolioType
PORTFOLIO_TYPE_RETIREMENT: PortfolioType
PORTFOLIO_TYPE_FUND: PortfolioType
PORTFOLIO_TYPE_OTHER: PortfolioType
ASSET_TYPE_UNSPECIFIED: AssetType
ASSET_TYPE_EQUITY: AssetType
ASSET_TYPE_ETF: AssetType
ASSET_TYPE_FUND: AssetType
ASSET_TYPE_BOND: AssetType
ASSET_TYPE_CASH: AssetType
ASSET_TYPE_OTHER: AssetType
PORTFOLIO_TRANSACTION_TYPE_UNSPECIFIED: PortfolioTransactionType
PORTFOLIO_TRANSACTION_TYPE_BUY: PortfolioTransactionType
PORTFOLIO_TRANSACTION_TYPE_SELL: PortfolioTransactionType
PORTFOLIO_TRANSACTION_TYPE_DIVIDEND: PortfolioTransactionType
PORTFOLIO_TRANSACTION_TYPE_FEE: PortfolioTransactionType
PORTFOLIO_TRANSACTION_TYPE_DEPOSIT: PortfolioTransactionType
PORTFOLIO_TRANSACTION_TYPE_WITHDRAWAL: PortfolioTransactionType
PORTFOLIO_TRANSACTION_TYPE_OTHER: PortfolioTransactionType

class Instrument(_message.Message):
    __slots__ = ("isin", "ticker", "name", "asset_type", "currency", "exchange")
    ISIN_FIELD_NUMBER: _ClassVar[int]
    TICKER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ASSET_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    isin: str
    ticker: str
    name: str
    asset_type: AssetType
    currency: str
    exchange: str
    def __init__(self, isin: _Optional[str] = ..., ticker: _Optional[str] = ..., name: _Optional[str] = ..., asset_type: _Optional[_Union[AssetType, str]] = ..., currency: _Optional[str] = ..., exchange: _Optional[str] = ...) -> None: ...

class Portfolio(_message.Message):
    __slots__ = ("id", "connection_id", "type", "name", "value", "cash_account_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CASH_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    connection_id: str
    type: PortfolioType
    name: str
    value: _common_pb2.Money
    cash_account_id: str
    def __init__(self, id: _Optional[str] = ..., connection_id: _Optional[str] = ..., type: _Optional[_Union[PortfolioType, str]] = ..., name: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., cash_account_id: _Optional[str] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("id", "portfolio_id", "instrument", "quantity", "price", "market_value", "cost_basis")
    ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    MARKET_VALUE_FIELD_NUMBER: _ClassVar[int]
    COST_BASIS_FIELD_NUMBER: _ClassVar[int]
    id: str
    portfolio_id: str
    instrument: Instrument
    quantity: str
    price: _common_pb2.Money
    market_value: _common_pb2.Money
    cost_basis: _common_pb2.Money
    def __init__(self, id: _Optional[str] = ..., portfolio_id: _Optional[str] = ..., instrument: _Optional[_Union[Instrument, _Mapping]] = ..., quantity: _Optional[str] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., market_value: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., cost_basis: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class PortfolioTransaction(_message.Message):
    __slots__ = ("id", "portfolio_id", "type", "date", "instrument", "quantity", "price", "amount", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    portfolio_id: str
    type: PortfolioTransactionType
    date: str
    instrument: Instrument
    quantity: str
    price: _common_pb2.Money
    amount: _common_pb2.Money
    description: str
    def __init__(self, id: _Optional[str] = ..., portfolio_id: _Optional[str] = ..., type: _Optional[_Union[PortfolioTransactionType, str]] = ..., date: _Optional[str] = ..., instrument: _Optional[_Union[Instrument, _Mapping]] = ..., quantity: _Optional[str] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class ListPortfoliosRequest(_message.Message):
    __slots__ = ("connection_id", "page_size", "page_token")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    page_size: int
    page_token: str
    def __init__(self, connection_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPortfoliosResponse(_message.Message):
    __slots__ = ("portfolios", "next_page_token")
    PORTFOLIOS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    portfolios: _containers.RepeatedCompositeFieldContainer[Portfolio]
    next_page_token: str
    def __init__(self, portfolios: _Optional[_Iterable[_Union[Portfolio, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListPortfolioPositionsRequest(_message.Message):
    __slots__ = ("connection_id", "portfolio_id", "page_size", "page_token")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    portfolio_id: str
    page_size: int
    page_token: str
    def __init__(self, connection_id: _Optional[str] = ..., portfolio_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPortfolioPositionsResponse(_message.Message):
    __slots__ = ("positions", "next_page_token")
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    positions: _containers.RepeatedCompositeFieldContainer[Position]
    next_page_token: str
    def __init__(self, positions: _Optional[_Iterable[_Union[Position, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListPortfolioTransactionsRequest(_message.Message):
    __slots__ = ("connection_id", "portfolio_id", "start_date", "end_date", "page_size", "page_token")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_ID_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    portfolio_id: str
    start_date: str
    end_date: str
    page_size: int
    page_token: str
    def __init__(self, connection_id: _Optional[str] = ..., portfolio_id: _Optional[str] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPortfolioTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[PortfolioTransaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[PortfolioTransaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SyncPortfolioTransactionsRequest(_message.Message):
    __slots__ = ("connection_id", "portfolio_id", "cursor", "page_size")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    portfolio_id: str
    cursor: str
    page_size: int
    def __init__(self, connection_id: _Optional[str] = ..., portfolio_id: _Optional[str] = ..., cursor: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class SyncPortfolioTransactionsResponse(_message.Message):
    __slots__ = ("added", "modified", "removed", "next_cursor", "has_more")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedCompositeFieldContainer[PortfolioTransaction]
    modified: _containers.RepeatedCompositeFieldContainer[PortfolioTransaction]
    removed: _containers.RepeatedScalarFieldContainer[str]
    next_cursor: str
    has_more: bool
    def __init__(self, added: _Optional[_Iterable[_Union[PortfolioTransaction, _Mapping]]] = ..., modified: _Optional[_Iterable[_Union[PortfolioTransaction, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ..., next_cursor: _Optional[str] = ..., has_more: _Optional[bool] = ...) -> None: ...
