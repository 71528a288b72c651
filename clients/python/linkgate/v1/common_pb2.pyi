from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Product(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCT_UNSPECIFIED: _ClassVar[Product]
    PRODUCT_ACCOUNTS: _ClassVar[Product]
    PRODUCT_TRANSACTIONS: _ClassVar[Product]
    PRODUCT_INVESTMENTS: _ClassVar[Product]
    PRODUCT_IDENTITY: _ClassVar[Product]
    PRODUCT_STATEMENTS: _ClassVar[Product]
    PRODUCT_ACCOUNT_NUMBERS: _ClassVar[Product]

class ProductState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCT_STATE_UNSPECIFIED: _ClassVar[ProductState]
    PRODUCT_STATE_NOT_READY: _ClassVar[ProductState]
    PRODUCT_STATE_READY: _ClassVar[ProductState]
    PRODUCT_STATE_REFRESHING: _ClassVar[ProductState]
    PRODUCT_STATE_FAILED: _ClassVar[ProductState]
    PRODUCT_STATE_UNSUPPORTED: _ClassVar[ProductState]

class LinkFlow(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_FLOW_UNSPECIFIED: _ClassVar[LinkFlow]
    LINK_FLOW_HOSTED: _ClassVar[LinkFlow]
    LINK_FLOW_CREDENTIALS: _ClassVar[LinkFlow]
PRODUCT_UNSPECIFIED: Product
PRODUCT_ACCOUNTS: Product
PRODUCT_TRANSACTIONS: Product
PRODUCT_INVESTMENTS: Product
PRODUCT_IDENTITY: Product
PRODUCT_STATEMENTS: Product
PRODUCT_ACCOUNT_NUMBERS: Product
PRODUCT_STATE_UNSPECIFIED: ProductState
PRODUCT_STATE_NOT_READY: ProductState
PRODUCT_STATE_READY: ProductState
PRODUCT_STATE_REFRESHING: ProductState
PRODUCT_STATE_FAILED: ProductState
PRODUCT_STATE_UNSUPPORTED: ProductState
LINK_FLOW_UNSPECIFIED: LinkFlow
LINK_FLOW_HOSTED: LinkFlow
LINK_FLOW_CREDENTIALS: LinkFlow

class Money(_message.Message):
    __slots__ = ("amount", "currency")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    amount: str
    currency: str
    def __init__(self, amount: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...
