#!/usr/bin/env python3
"""Walks linkgate's sandbox flow with the generated Python stubs.

Links Sandbox Bank with MFA, exchanges the public token, watches the connection until its first
import is done, lists the accounts, then deletes the connection. Every call and every stream is
bounded by a 30 s deadline; any failure exits non-zero and prints the error's ErrorInfo reason.

    LINKGATE_ADDR=127.0.0.1:50051 python clients/python/examples/sandbox_flow.py

LINKGATE_API_KEY, when set, is sent as `authorization: Bearer <key>` (not needed in dev mode).
"""

import os
import sys

# The generated package lives in clients/python; `pip install ./clients/python` makes this unneeded.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import grpc  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from linkgate.v1 import (  # noqa: E402
    account_service_pb2,
    account_service_pb2_grpc,
    connection_service_pb2,
    connection_service_pb2_grpc,
    link_service_pb2,
    link_service_pb2_grpc,
)

# Options of every call and stream: a 30 s deadline, and the API key when there is one.
API_KEY = os.environ.get("LINKGATE_API_KEY")
CALL = {"timeout": 30.0, "metadata": [("authorization", f"Bearer {API_KEY}")] if API_KEY else []}

LinkSessionState = link_service_pb2.LinkSessionState
ConnectionState = connection_service_pb2.ConnectionState
AccountType = account_service_pb2.AccountType


def error_reason(error: grpc.RpcError) -> str:
    """The google.rpc.ErrorInfo reason linkgate puts in every error's details, if present."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return "(no ErrorInfo)"


def run(channel: grpc.Channel) -> None:
    link = link_service_pb2_grpc.LinkServiceStub(channel)
    connections = connection_service_pb2_grpc.ConnectionServiceStub(channel)
    accounts = account_service_pb2_grpc.AccountServiceStub(channel)

    providers = link.ListProviders(link_service_pb2.ListProvidersRequest(), **CALL).providers
    print("providers:", ", ".join(f"{p.id} ({'enabled' if p.enabled else 'disabled'})" for p in providers))

    session = link.CreateLinkSession(
        link_service_pb2.CreateLinkSessionRequest(
            provider="sandbox", institution_id="ins_sandbox_bank", external_user_id="example-user"
        ),
        **CALL,
    ).link_session
    print(f"link session {session.id}: {LinkSessionState.Name(session.state)}")

    # Watch from the start so the stream reports every state the session passes through. The first
    # message is the current state; reading it means the watch is established.
    session_events = link.WatchLinkSession(
        link_service_pb2.WatchLinkSessionRequest(link_session_id=session.id), **CALL
    )
    first = next(session_events, None)
    if first is None:
        raise SystemExit("the link session stream ended at once")
    print("  watch:", LinkSessionState.Name(first.link_session.state))

    submitted = link.SubmitCredentials(
        link_service_pb2.SubmitCredentialsRequest(
            link_session_id=session.id, credentials={"username": "user_mfa", "password": "pass_good"}
        ),
        **CALL,
    ).link_session
    print(f"submitted credentials: {LinkSessionState.Name(submitted.state)}, question: {submitted.mfa_question!r}")

    answered = link.AnswerMfa(
        link_service_pb2.AnswerMfaRequest(link_session_id=session.id, answer="1234"), **CALL
    ).link_session
    print("answered MFA:", LinkSessionState.Name(answered.state))

    # The stream ends by itself after a terminal state.
    public_token = None
    for message in session_events:
        state = message.link_session.state
        print("  watch:", LinkSessionState.Name(state))
        if state in (LinkSessionState.LINK_SESSION_STATE_FAILED, LinkSessionState.LINK_SESSION_STATE_EXPIRED):
            raise SystemExit(f"link session ended {LinkSessionState.Name(state)}: {message.link_session.failure_message}")
        if state == LinkSessionState.LINK_SESSION_STATE_SUCCEEDED:
            public_token = message.link_session.public_token
    if public_token is None:
        raise SystemExit("the link session stream ended before SUCCEEDED")

    connection = link.ExchangePublicToken(
        link_service_pb2.ExchangePublicTokenRequest(provider="sandbox", public_token=public_token), **CALL
    ).connection
    print(f"exchanged the public token: connection {connection.id} is {ConnectionState.Name(connection.state)}")

    # This stream stays open until the connection is deleted: stop it once the connection is READY.
    events = connections.WatchConnection(
        connection_service_pb2.WatchConnectionRequest(connection_id=connection.id), **CALL
    )
    for message in events:
        event = message.event
        print(f"  event {event.event_id}: {ConnectionState.Name(event.connection.state)}")
        if event.connection.state == ConnectionState.CONNECTION_STATE_READY:
            events.cancel()
            break
    else:
        raise SystemExit("the connection stream ended before READY")

    listed = accounts.ListAccounts(
        account_service_pb2.ListAccountsRequest(connection_id=connection.id), **CALL
    ).accounts
    print(f"{len(listed)} accounts:")
    for account in listed:
        current = account.balances.current
        print(f"  {account.name:<24} {AccountType.Name(account.type):<28} {current.amount:>12} {current.currency}")

    deleted = connections.DeleteConnection(
        connection_service_pb2.DeleteConnectionRequest(connection_id=connection.id), **CALL
    ).connection
    print(f"deleted connection {deleted.id}: {ConnectionState.Name(deleted.state)}")


def main() -> int:
    addr = os.environ.get("LINKGATE_ADDR", "127.0.0.1:50051").removeprefix("http://")
    print("linkgate at", addr)
    with grpc.insecure_channel(addr) as channel:
        try:
            run(channel)
        except grpc.RpcError as error:
            print(f"failed: {error.code().name}: {error.details()} (reason {error_reason(error)})", file=sys.stderr)
            return 1
    print("sandbox flow complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
