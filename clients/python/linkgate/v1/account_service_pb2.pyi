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

class PhoneNumberType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHONE_NUMBER_TYPE_UNSPECIFIED: _ClassVar[PhoneNumberType]
    PHONE_NUMBER_TYPE_HOME: _ClassVar[PhoneNumberType]
    PHONE_NUMBER_TYPE_WORK: _ClassVar[PhoneNumberType]
    PHONE_NUMBER_TYPE_MOBILE: _ClassVar[PhoneNumberType]
    PHONE_NUMBER_TYPE_OTHER: _ClassVar[PhoneNumberType]
ACCOUNT_TYPE_UNSPECIFIED: AccountType
ACCOUNT_TYPE_CHECKING: AccountType
ACCOUNT_TYPE_SAVINGS: AccountType
ACCOUNT_TYPE_CREDIT_CARD: AccountType
ACCOUNT_TYPE_LOAN: AccountType
ACCOUNT_TYPE_BROKERAGE_CASH: AccountType
ACCOUNT_TYPE_UTILITY: AccountType
ACCOUNT_TYPE_OTHER: AccountType
PHONE_NUMBER_TYPE_UNSPECIFIED: PhoneNumberType
PHONE_NUMBER_TYPE_HOME: PhoneNumberType
PHONE_NUMBER_TYPE_WORK: PhoneNumberType
PHONE_NUMBER_TYPE_MOBILE: PhoneNumberType
PHONE_NUMBER_TYPE_OTHER: PhoneNumberType

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

class ListAccountNumbersRequest(_message.Message):
    __slots__ = ("connection_id", "account_id", "page_size", "page_token")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    account_id: str
    page_size: int
    page_token: str
    def __init__(self, connection_id: _Optional[str] = ..., account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccountNumbersResponse(_message.Message):
    __slots__ = ("account_numbers", "next_page_token")
    ACCOUNT_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_numbers: _containers.RepeatedCompositeFieldContainer[AccountNumbers]
    next_page_token: str
    def __init__(self, account_numbers: _Optional[_Iterable[_Union[AccountNumbers, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AccountNumbers(_message.Message):
    __slots__ = ("account_id", "ach", "eft", "bacs", "international")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACH_FIELD_NUMBER: _ClassVar[int]
    EFT_FIELD_NUMBER: _ClassVar[int]
    BACS_FIELD_NUMBER: _ClassVar[int]
    INTERNATIONAL_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    ach: _containers.RepeatedCompositeFieldContainer[AchNumber]
    eft: _containers.RepeatedCompositeFieldContainer[EftNumber]
    bacs: _containers.RepeatedCompositeFieldContainer[BacsNumber]
    international: _containers.RepeatedCompositeFieldContainer[InternationalNumber]
    def __init__(self, account_id: _Optional[str] = ..., ach: _Optional[_Iterable[_Union[AchNumber, _Mapping]]] = ..., eft: _Optional[_Iterable[_Union[EftNumber, _Mapping]]] = ..., bacs: _Optional[_Iterable[_Union[BacsNumber, _Mapping]]] = ..., international: _Optional[_Iterable[_Union[InternationalNumber, _Mapping]]] = ...) -> None: ...

class AchNumber(_message.Message):
    __slots__ = ("account_number", "routing_number", "wire_routing_number")
    ACCOUNT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ROUTING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    WIRE_ROUTING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    account_number: str
    routing_number: str
    wire_routing_number: str
    def __init__(self, account_number: _Optional[str] = ..., routing_number: _Optional[str] = ..., wire_routing_number: _Optional[str] = ...) -> None: ...

class EftNumber(_message.Message):
    __slots__ = ("account_number", "institution_number", "branch_number")
    ACCOUNT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BRANCH_NUMBER_FIELD_NUMBER: _ClassVar[int]
    account_number: str
    institution_number: str
    branch_number: str
    def __init__(self, account_number: _Optional[str] = ..., institution_number: _Optional[str] = ..., branch_number: _Optional[str] = ...) -> None: ...

class BacsNumber(_message.Message):
    __slots__ = ("account_number", "sort_code")
    ACCOUNT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SORT_CODE_FIELD_NUMBER: _ClassVar[int]
    account_number: str
    sort_code: str
    def __init__(self, account_number: _Optional[str] = ..., sort_code: _Optional[str] = ...) -> None: ...

class InternationalNumber(_message.Message):
    __slots__ = ("iban", "bic")
    IBAN_FIELD_NUMBER: _ClassVar[int]
    BIC_FIELD_NUMBER: _ClassVar[int]
    iban: str
    bic: str
    def __init__(self, iban: _Optional[str] = ..., bic: _Optional[str] = ...) -> None: ...

class ListAccountOwnersRequest(_message.Message):
    __slots__ = ("connection_id", "account_id", "page_size", "page_token")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    account_id: str
    page_size: int
    page_token: str
    def __init__(self, connection_id: _Optional[str] = ..., account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccountOwnersResponse(_message.Message):
    __slots__ = ("account_owners", "next_page_token")
    ACCOUNT_OWNERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_owners: _containers.RepeatedCompositeFieldContainer[AccountOwners]
    next_page_token: str
    def __init__(self, account_owners: _Optional[_Iterable[_Union[AccountOwners, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AccountOwners(_message.Message):
    __slots__ = ("account_id", "portfolio_id", "owners")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_ID_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    portfolio_id: str
    owners: _containers.RepeatedCompositeFieldContainer[Owner]
    def __init__(self, account_id: _Optional[str] = ..., portfolio_id: _Optional[str] = ..., owners: _Optional[_Iterable[_Union[Owner, _Mapping]]] = ...) -> None: ...

class Owner(_message.Message):
    __slots__ = ("names", "emails", "phone_numbers", "addresses")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    emails: _containers.RepeatedCompositeFieldContainer[OwnerEmail]
    phone_numbers: _containers.RepeatedCompositeFieldContainer[OwnerPhoneNumber]
    addresses: _containers.RepeatedCompositeFieldContainer[OwnerAddress]
    def __init__(self, names: _Optional[_Iterable[str]] = ..., emails: _Optional[_Iterable[_Union[OwnerEmail, _Mapping]]] = ..., phone_numbers: _Optional[_Iterable[_Union[OwnerPhoneNumber, _Mapping]]] = ..., addresses: _Optional[_Iterable[_Union[OwnerAddress, _Mapping]]] = ...) -> None: ...

class OwnerEmail(_message.Message):
    __slots__ = ("address", "primary")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    address: str
    primary: bool
    def __init__(self, address: _Optional[str] = ..., primary: _Optional[bool] = ...) -> None: ...

class OwnerPhoneNumber(_message.Message):
    __slots__ = ("number", "type", "primary")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    number: str
    type: PhoneNumberType
    primary: bool
    def __init__(self, number: _Optional[str] = ..., type: _Optional[_Union[PhoneNumberType, str]] = ..., primary: _Optional[bool] = ...) -> None: ...

class OwnerAddress(_message.Message):
    __slots__ = ("street", "city", "region", "postal_code", "country", "primary")
    STREET_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    street: str
    city: str
    region: str
    postal_code: str
    country: str
    primary: bool
    def __init__(self, street: _Optional[str] = ..., city: _Optional[str] = ..., region: _Optional[str] = ..., postal_code: _Optional[str] = ..., country: _Optional[str] = ..., primary: _Optional[bool] = ...) -> None: ...
