// Walks linkgate's sandbox flow with the generated TypeScript stubs (protobuf-es + Connect).
//
// Links Sandbox Bank with MFA, exchanges the public token, watches the connection until its first
// import is done, lists the accounts, then deletes the connection. Every call and every stream is
// bounded by a 30 s deadline; any failure exits non-zero and prints the error's ErrorInfo reason.
//
//   cd clients/typescript && npm ci && npm run build
//   LINKGATE_ADDR=127.0.0.1:50051 node dist/examples/sandbox_flow.js
//
// LINKGATE_API_KEY, when set, is sent as `authorization: Bearer <key>` (not needed in dev mode).

import type { DescEnum } from "@bufbuild/protobuf";
import { type CallOptions, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { AccountService, AccountTypeSchema } from "../src/gen/linkgate/v1/account_service_pb.js";
import {
  ConnectionService,
  ConnectionState,
  ConnectionStateSchema,
} from "../src/gen/linkgate/v1/connection_service_pb.js";
import { LinkService, LinkSessionState, LinkSessionStateSchema } from "../src/gen/linkgate/v1/link_service_pb.js";

// Options of every call and stream: a 30 s deadline, and the API key when there is one.
const apiKey = process.env.LINKGATE_API_KEY;
const call: CallOptions = { timeoutMs: 30_000, headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} };

/** The proto name of an enum value, for example LINK_SESSION_STATE_SUCCEEDED. */
const name = (schema: DescEnum, value: number): string => schema.value[value]?.name ?? `${value}`;

async function run(baseUrl: string): Promise<void> {
  const transport = createGrpcTransport({ baseUrl });
  const link = createClient(LinkService, transport);
  const connections = createClient(ConnectionService, transport);
  const accounts = createClient(AccountService, transport);

  const { providers } = await link.listProviders({}, call);
  console.log("providers:", providers.map((p) => `${p.id} (${p.enabled ? "enabled" : "disabled"})`).join(", "));

  const created = await link.createLinkSession(
    { provider: "sandbox", institutionId: "ins_sandbox_bank", externalUserId: "example-user" },
    call,
  );
  const session = created.linkSession!;
  console.log(`link session ${session.id}: ${name(LinkSessionStateSchema, session.state)}`);

  // Watch from the start so the stream reports every state the session passes through. The first
  // message is the current state; reading it means the watch is established.
  const sessionEvents = link.watchLinkSession({ linkSessionId: session.id }, call)[Symbol.asyncIterator]();
  const first = await sessionEvents.next();
  if (first.done) throw new Error("the link session stream ended at once");
  console.log("  watch:", name(LinkSessionStateSchema, first.value.linkSession!.state));

  const submitted = await link.submitCredentials(
    { linkSessionId: session.id, credentials: { username: "user_mfa", password: "pass_good" } },
    call,
  );
  const asked = submitted.linkSession!;
  console.log(
    `submitted credentials: ${name(LinkSessionStateSchema, asked.state)}, question: ${JSON.stringify(asked.mfaQuestion)}`,
  );

  const answered = await link.answerMfa({ linkSessionId: session.id, answer: "1234" }, call);
  console.log("answered MFA:", name(LinkSessionStateSchema, answered.linkSession!.state));

  // The stream ends by itself after a terminal state.
  let publicToken: string | undefined;
  for (let next = await sessionEvents.next(); !next.done; next = await sessionEvents.next()) {
    const s = next.value.linkSession!;
    console.log("  watch:", name(LinkSessionStateSchema, s.state));
    if (s.state === LinkSessionState.FAILED || s.state === LinkSessionState.EXPIRED) {
      throw new Error(`link session ended ${name(LinkSessionStateSchema, s.state)}: ${s.failureMessage}`);
    }
    if (s.state === LinkSessionState.SUCCEEDED) publicToken = s.publicToken;
  }
  if (publicToken === undefined) throw new Error("the link session stream ended before SUCCEEDED");

  const exchanged = await link.exchangePublicToken({ provider: "sandbox", publicToken }, call);
  const connection = exchanged.connection!;
  console.log(
    `exchanged the public token: connection ${connection.id} is ${name(ConnectionStateSchema, connection.state)}`,
  );

  // This stream stays open until the connection is deleted: stop it once the connection is READY.
  // Its 30 s bound is an abort signal rather than timeoutMs: a cancelled call's deadline timer
  // would keep Node running until it fired, while AbortSignal.timeout's does not.
  const stopWatch = new AbortController();
  const signal = AbortSignal.any([stopWatch.signal, AbortSignal.timeout(30_000)]);
  const events = connections
    .watchConnection({ connectionId: connection.id }, { headers: call.headers, signal })
    [Symbol.asyncIterator]();
  for (let ready = false; !ready; ) {
    const next = await events.next();
    if (next.done) throw new Error("the connection stream ended before READY");
    const event = next.value.event!;
    console.log(`  event ${event.eventId}: ${name(ConnectionStateSchema, event.connection!.state)}`);
    ready = event.connection!.state === ConnectionState.READY;
  }
  // Cancel the call, then let it settle.
  stopWatch.abort();
  await events.next().catch(() => undefined);

  const listed = await accounts.listAccounts({ connectionId: connection.id }, call);
  console.log(`${listed.accounts.length} accounts:`);
  for (const account of listed.accounts) {
    const current = account.balances?.current;
    console.log(
      `  ${account.name.padEnd(24)} ${name(AccountTypeSchema, account.type).padEnd(28)} ` +
        `${(current?.amount ?? "").padStart(12)} ${current?.currency ?? ""}`,
    );
  }

  const deleted = await connections.deleteConnection({ connectionId: connection.id }, call);
  console.log(`deleted connection ${connection.id}: ${name(ConnectionStateSchema, deleted.connection!.state)}`);
}

async function main(): Promise<number> {
  const addr = process.env.LINKGATE_ADDR ?? "127.0.0.1:50051";
  const baseUrl = addr.includes("://") ? addr : `http://${addr}`;
  console.log("linkgate at", baseUrl);
  try {
    await run(baseUrl);
  } catch (err) {
    const error = ConnectError.from(err);
    const reason = error.findDetails(ErrorInfoSchema)[0]?.reason ?? "(no ErrorInfo)";
    console.error(`failed: ${Code[error.code]}: ${error.rawMessage} (reason ${reason})`);
    return 1;
  }
  console.log("sandbox flow complete");
  return 0;
}

process.exitCode = await main();
