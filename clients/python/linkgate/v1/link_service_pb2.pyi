import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from linkgate.v1 import common_pb2 as _common_pb2
from linkgate.v1 import connection_service_pb2 as _connection_service_pb2
from linkgate.v1 import error_reason_pb2 as _error_reason_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LinkSessionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_SESSION_STATE_UNSPECIFIED: _ClassVar[LinkSessionState]
    LINK_SESSION_STATE_CREATED: _ClassVar[LinkSessionState]
    LINK_SESSION_STATE_CONNECTING: _ClassVar[LinkSessionState]
    LINK_SESSION_STATE_MFA_REQUIRED: _ClassVar[LinkSessionState]
    LINK_SESSION_STATE_SUCCEEDED: _ClassVar[LinkSessionState]
    LINK_SESSION_STATE_FAILED: _ClassVar[LinkSessionState]
    LINK_SESSION_STATE_EXPIRED: _ClassVar[LinkSessionState]

class ProviderHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_HEALTH_UNSPECIFIED: _ClassVar[ProviderHealth]
    PROVIDER_HEALTH_HEALTHY: _ClassVar[ProviderHealth]
    PROVIDER_HEALTH_DEGRADED: _ClassVar[ProviderHealth]

class InstitutionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTITUTION_KIND_UNSPECIFIED: _ClassVar[InstitutionKind]
    INSTITUTION_KIND_BANK: _ClassVar[InstitutionKind]
    INSTITUTION_KIND_BROKER: _ClassVar[InstitutionKind]
    INSTITUTION_KIND_UTILITY: _ClassVar[InstitutionKind]
LINK_SESSION_STATE_UNSPECIFIED: LinkSessionState
LINK_SESSION_STATE_CREATED: LinkSessionState
LINK_SESSION_STATE_CONNECTING: LinkSessionState
LINK_SESSION_STATE_MFA_REQUIRED: LinkSessionState
LINK_SESSION_STATE_SUCCEEDED: LinkSessionState
LINK_SESSION_STATE_FAILED: LinkSessionState
LINK_SESSION_STATE_EXPIRED: LinkSessionState
PROVIDER_HEALTH_UNSPECIFIED: ProviderHealth
PROVIDER_HEALTH_HEALTHY: ProviderHealth
PROVIDER_HEALTH_DEGRADED: ProviderHealth
INSTITUTION_KIND_UNSPECIFIED: InstitutionKind
INSTITUTION_KIND_BANK: InstitutionKind
INSTITUTION_KIND_BROKER: InstitutionKind
INSTITUTION_KIND_UTILITY: InstitutionKind

class LinkSession(_message.Message):
    __slots__ = ("id", "provider", "institution_id", "external_user_id", "state", "flow", "products", "link_token", "hosted_link_url", "mfa_question", "public_token", "public_token_expires_at", "failure_reason", "failure_message", "redirect_uri", "created_at", "updated_at", "expires_at", "connection_id", "mfa_methods")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    LINK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HOSTED_LINK_URL_FIELD_NUMBER: _ClassVar[int]
    MFA_QUESTION_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_TOKEN_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    MFA_METHODS_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    institution_id: str
    external_user_id: str
    state: LinkSessionState
    flow: _common_pb2.LinkFlow
    products: _containers.RepeatedScalarFieldContainer[_common_pb2.Product]
    link_token: str
    hosted_link_url: str
    mfa_question: str
    public_token: str
    public_token_expires_at: _timestamp_pb2.Timestamp
    failure_reason: _error_reason_pb2.ErrorReason
    failure_message: str
    redirect_uri: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    connection_id: str
    mfa_methods: _containers.RepeatedCompositeFieldContainer[MfaMethod]
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., institution_id: _Optional[str] = ..., external_user_id: _Optional[str] = ..., state: _Optional[_Union[LinkSessionState, str]] = ..., flow: _Optional[_Union[_common_pb2.LinkFlow, str]] = ..., products: _Optional[_Iterable[_Union[_common_pb2.Product, str]]] = ..., link_token: _Optional[str] = ..., hosted_link_url: _Optional[str] = ..., mfa_question: _Optional[str] = ..., public_token: _Optional[str] = ..., public_token_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failure_reason: _Optional[_Union[_error_reason_pb2.ErrorReason, str]] = ..., failure_message: _Optional[str] = ..., redirect_uri: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., connection_id: _Optional[str] = ..., mfa_methods: _Optional[_Iterable[_Union[MfaMethod, _Mapping]]] = ...) -> None: ...

class MfaMethod(_message.Message):
    __slots__ = ("id", "label")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    label: str
    def __init__(self, id: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class Provider(_message.Message):
    __slots__ = ("id", "display_name", "enabled", "flows", "products", "health", "required_fields")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    enabled: bool
    flows: _containers.RepeatedScalarFieldContainer[_common_pb2.LinkFlow]
    products: _containers.RepeatedScalarFieldContainer[_common_pb2.Product]
    health: ProviderHealth
    required_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., enabled: _Optional[bool] = ..., flows: _Optional[_Iterable[_Union[_common_pb2.LinkFlow, str]]] = ..., products: _Optional[_Iterable[_Union[_common_pb2.Product, str]]] = ..., health: _Optional[_Union[ProviderHealth, str]] = ..., required_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class ListProvidersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProvidersResponse(_message.Message):
    __slots__ = ("providers",)
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    def __init__(self, providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ...) -> None: ...

class CredentialField(_message.Message):
    __slots__ = ("name", "label", "secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    label: str
    secret: bool
    def __init__(self, name: _Optional[str] = ..., label: _Optional[str] = ..., secret: _Optional[bool] = ...) -> None: ...

class Institution(_message.Message):
    __slots__ = ("id", "provider", "name", "kind", "products", "credential_fields", "country_codes")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELDS_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODES_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    name: str
    kind: InstitutionKind
    products: _containers.RepeatedScalarFieldContainer[_common_pb2.Product]
    credential_fields: _containers.RepeatedCompositeFieldContainer[CredentialField]
    country_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[InstitutionKind, str]] = ..., products: _Optional[_Iterable[_Union[_common_pb2.Product, str]]] = ..., credential_fields: _Optional[_Iterable[_Union[CredentialField, _Mapping]]] = ..., country_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class ListInstitutionsRequest(_message.Message):
    __slots__ = ("provider", "query", "page_size", "page_token")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    provider: str
    query: str
    page_size: int
    page_token: str
    def __init__(self, provider: _Optional[str] = ..., query: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInstitutionsResponse(_message.Message):
    __slots__ = ("institutions", "next_page_token")
    INSTITUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    institutions: _containers.RepeatedCompositeFieldContainer[Institution]
    next_page_token: str
    def __init__(self, institutions: _Optional[_Iterable[_Union[Institution, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateLinkSessionRequest(_message.Message):
    __slots__ = ("provider", "external_user_id", "institution_id", "products", "redirect_uri", "flow", "request_id", "connection_id")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    provider: str
    external_user_id: str
    institution_id: str
    products: _containers.RepeatedScalarFieldContainer[_common_pb2.Product]
    redirect_uri: str
    flow: _common_pb2.LinkFlow
    request_id: str
    connection_id: str
    def __init__(self, provider: _Optional[str] = ..., external_user_id: _Optional[str] = ..., institution_id: _Optional[str] = ..., products: _Optional[_Iterable[_Union[_common_pb2.Product, str]]] = ..., redirect_uri: _Optional[str] = ..., flow: _Optional[_Union[_common_pb2.LinkFlow, str]] = ..., request_id: _Optional[str] = ..., connection_id: _Optional[str] = ...) -> None: ...

class CreateLinkSessionResponse(_message.Message):
    __slots__ = ("link_session",)
    LINK_SESSION_FIELD_NUMBER: _ClassVar[int]
    link_session: LinkSession
    def __init__(self, link_session: _Optional[_Union[LinkSession, _Mapping]] = ...) -> None: ...

class GetLinkSessionRequest(_message.Message):
    __slots__ = ("link_session_id",)
    LINK_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    link_session_id: str
    def __init__(self, link_session_id: _Optional[str] = ...) -> None: ...

class GetLinkSessionResponse(_message.Message):
    __slots__ = ("link_session",)
    LINK_SESSION_FIELD_NUMBER: _ClassVar[int]
    link_session: LinkSession
    def __init__(self, link_session: _Optional[_Union[LinkSession, _Mapping]] = ...) -> None: ...

class SubmitCredentialsRequest(_message.Message):
    __slots__ = ("link_session_id", "institution_id", "credentials", "request_id")
    class CredentialsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LINK_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    link_session_id: str
    institution_id: str
    credentials: _containers.ScalarMap[str, str]
    request_id: str
    def __init__(self, link_session_id: _Optional[str] = ..., institution_id: _Optional[str] = ..., credentials: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitCredentialsResponse(_message.Message):
    __slots__ = ("link_session",)
    LINK_SESSION_FIELD_NUMBER: _ClassVar[int]
    link_session: LinkSession
    def __init__(self, link_session: _Optional[_Union[LinkSession, _Mapping]] = ...) -> None: ...

class AnswerMfaRequest(_message.Message):
    __slots__ = ("link_session_id", "answer", "request_id", "mfa_method_id")
    LINK_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MFA_METHOD_ID_FIELD_NUMBER: _ClassVar[int]
    link_session_id: str
    answer: str
    request_id: str
    mfa_method_id: str
    def __init__(self, link_session_id: _Optional[str] = ..., answer: _Optional[str] = ..., request_id: _Optional[str] = ..., mfa_method_id: _Optional[str] = ...) -> None: ...

class AnswerMfaResponse(_message.Message):
    __slots__ = ("link_session",)
    LINK_SESSION_FIELD_NUMBER: _ClassVar[int]
    link_session: LinkSession
    def __init__(self, link_session: _Optional[_Union[LinkSession, _Mapping]] = ...) -> None: ...

class WatchLinkSessionRequest(_message.Message):
    __slots__ = ("link_session_id",)
    LINK_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    link_session_id: str
    def __init__(self, link_session_id: _Optional[str] = ...) -> None: ...

class WatchLinkSessionResponse(_message.Message):
    __slots__ = ("link_session",)
    LINK_SESSION_FIELD_NUMBER: _ClassVar[int]
    link_session: LinkSession
    def __init__(self, link_session: _Optional[_Union[LinkSession, _Mapping]] = ...) -> None: ...

class PublicToken(_message.Message):
    __slots__ = ("public_token", "provider", "link_session_id", "institution_id", "external_user_id", "created_at", "expires_at")
    PUBLIC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    LINK_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    public_token: str
    provider: str
    link_session_id: str
    institution_id: str
    external_user_id: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, public_token: _Optional[str] = ..., provider: _Optional[str] = ..., link_session_id: _Optional[str] = ..., institution_id: _Optional[str] = ..., external_user_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPublicTokensRequest(_message.Message):
    __slots__ = ("provider", "external_user_id", "page_size", "page_token")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    provider: str
    external_user_id: str
    page_size: int
    page_token: str
    def __init__(self, provider: _Optional[str] = ..., external_user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPublicTokensResponse(_message.Message):
    __slots__ = ("public_tokens", "next_page_token")
    PUBLIC_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    public_tokens: _containers.RepeatedCompositeFieldContainer[PublicToken]
    next_page_token: str
    def __init__(self, public_tokens: _Optional[_Iterable[_Union[PublicToken, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExchangePublicTokenRequest(_message.Message):
    __slots__ = ("provider", "public_token", "request_id", "external_user_id")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_USER_ID_FIELD_NUMBER: _ClassVar[int]
    provider: str
    public_token: str
    request_id: str
    external_user_id: str
    def __init__(self, provider: _Optional[str] = ..., public_token: _Optional[str] = ..., request_id: _Optional[str] = ..., external_user_id: _Optional[str] = ...) -> None: ...

class ExchangePublicTokenResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: _connection_service_pb2.Connection
    def __init__(self, connection: _Optional[_Union[_connection_service_pb2.Connection, _Mapping]] = ...) -> None: ...
