// The gRPC-Web sandbox flow (web/flow.ts) from Node, on Node's own fetch: what a browser would
// send, without a browser.
//
//   cd clients/typescript && npm ci && npm run build
//   LINKGATE_ADDR=127.0.0.1:50051 node dist/web/node_flow.js
//
// LINKGATE_API_KEY, when set, is sent as `authorization: Bearer <key>` (not needed in dev mode).

import { describeError, runWebFlow } from "./flow.js";

const addr = process.env.LINKGATE_ADDR ?? "127.0.0.1:50051";
const baseUrl = addr.includes("://") ? addr : `http://${addr}`;
console.log("linkgate (gRPC-Web) at", baseUrl);
try {
  await runWebFlow(baseUrl, (line) => console.log(line), process.env.LINKGATE_API_KEY);
  console.log("gRPC-Web sandbox flow complete");
} catch (err) {
  console.error(`failed: ${describeError(err)}`);
  process.exitCode = 1;
}
