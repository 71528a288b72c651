// The sandbox flow over gRPC-Web (@connectrpc/connect-web), as a browser page runs it against
// linkgate's gRPC port with no proxy in between. The same code runs in Node (web/node_flow.ts,
// on Node's fetch) and in Chromium (web/page.ts, checked by web/browser_check.ts).
//
// Lists the sandbox institutions, links Sandbox Bank (user_good / pass_good, no MFA), follows the
// link session's stream to SUCCEEDED, exchanges the public token, watches the connection over a
// server stream until READY, and asks for a connection that does not exist to check that an
// error's ErrorInfo reason arrives. Every call and stream is bounded by a 30 s deadline.

import type { DescEnum } from "@bufbuild/protobuf";
import { type CallOptions, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import {
  ConnectionService,
  ConnectionState,
  ConnectionStateSchema,
} from "../src/gen/linkgate/v1/connection_service_pb.js";
import { LinkService, LinkSessionState, LinkSessionStateSchema } from "../src/gen/linkgate/v1/link_service_pb.js";

/** The proto name of an enum value, for example CONNECTION_STATE_READY. */
const name = (schema: DescEnum, value: number): string => schema.value[value]?.name ?? `${value}`;

/** An error as one line: the gRPC code, the message and the ErrorInfo reason. */
export function describeError(err: unknown): string {
  const error = ConnectError.from(err);
  const reason = error.findDetails(ErrorInfoSchema)[0]?.reason ?? "(no ErrorInfo)";
  return `${Code[error.code]}: ${error.rawMessage} (reason ${reason})`;
}

/**
 * Runs the flow against linkgate's gRPC port at `baseUrl` (for example http://127.0.0.1:50051),
 * reporting each step to `log`; throws on the first failure. `apiKey`, when given, is sent as
 * `authorization: Bearer <key>` (dev mode needs none).
 */
export async function runWebFlow(baseUrl: string, log: (line: string) => void, apiKey?: string): Promise<void> {
  const transport = createGrpcWebTransport({ baseUrl });
  const call: CallOptions = { timeoutMs: 30_000, headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} };
  const link = createClient(LinkService, transport);
  const connections = createClient(ConnectionService, transport);

  const { institutions } = await link.listInstitutions({ provider: "sandbox" }, call);
  log(`sandbox institutions: ${institutions.map((i) => `${i.name} (${i.id})`).join(", ")}`);
  if (!institutions.some((i) => i.id === "ins_sandbox_bank")) throw new Error("Sandbox Bank is not listed");

  const created = await link.createLinkSession(
    { provider: "sandbox", institutionId: "ins_sandbox_bank", externalUserId: "web-user" },
    call,
  );
  const session = created.linkSession!;
  log(`link session ${session.id}: ${name(LinkSessionStateSchema, session.state)}`);
  const submitted = await link.submitCredentials(
    { linkSessionId: session.id, credentials: { username: "user_good", password: "pass_good" } },
    call,
  );
  log(`submitted credentials: ${name(LinkSessionStateSchema, submitted.linkSession!.state)}`);

  // A server stream: the session's states until it ends, which it does after a terminal state.
  let publicToken: string | undefined;
  for await (const { linkSession } of link.watchLinkSession({ linkSessionId: session.id }, call)) {
    log(`  session: ${name(LinkSessionStateSchema, linkSession!.state)}`);
    if (linkSession!.state === LinkSessionState.SUCCEEDED) publicToken = linkSession!.publicToken;
    if (linkSession!.state === LinkSessionState.FAILED || linkSession!.state === LinkSessionState.EXPIRED) {
      throw new Error(`the link session ended ${name(LinkSessionStateSchema, linkSession!.state)}`);
    }
  }
  if (publicToken === undefined) throw new Error("the link session stream ended before SUCCEEDED");

  const { connection } = await link.exchangePublicToken({ provider: "sandbox", publicToken }, call);
  log(`connection ${connection!.id}: ${name(ConnectionStateSchema, connection!.state)}`);

  // This stream stays open while the connection lives: cancel it once the connection is READY.
  // Its 30 s bound is a signal, not `timeoutMs`: connect keeps a cancelled call's deadline timer
  // running, which would hold Node's exit for the rest of the 30 s.
  const stopWatch = new AbortController();
  const signal = AbortSignal.any([stopWatch.signal, AbortSignal.timeout(30_000)]);
  const events = connections
    .watchConnection({ connectionId: connection!.id }, { headers: call.headers, signal })
    [Symbol.asyncIterator]();
  for (let ready = false; !ready; ) {
    const next = await events.next();
    if (next.done) throw new Error("the connection stream ended before READY");
    const event = next.value.event!;
    log(`  event ${event.eventId}: ${name(ConnectionStateSchema, event.connection!.state)}`);
    ready = event.connection!.state === ConnectionState.READY;
  }
  stopWatch.abort();
  log("connection READY");

  // Errors carry their details over gRPC-Web too (in the trailers, or a trailers-only answer's
  // headers, which a page may read only when CORS exposes them).
  const unknown = crypto.randomUUID();
  const refused = await connections.getConnection({ connectionId: unknown }, call).then(
    () => undefined,
    (err: unknown) => ConnectError.from(err),
  );
  const reason = refused?.findDetails(ErrorInfoSchema)[0]?.reason;
  if (refused?.code !== Code.NotFound || reason !== "CONNECTION_NOT_FOUND") {
    throw new Error(`an unknown connection answered ${refused ? describeError(refused) : "OK"}`);
  }
  log(`unknown connection: ${describeError(refused)}`);
}
