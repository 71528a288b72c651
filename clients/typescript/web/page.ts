// The browser page's script (bundled by web/browser_check.ts with esbuild): runs the gRPC-Web
// sandbox flow against the linkgate named by the page's `?linkgate=` parameter, writes each step
// into <pre id="log">, and sets <body data-outcome> to "passed" or "failed" when done.

import { describeError, runWebFlow } from "./flow.js";

const out = document.getElementById("log")!;
const log = (line: string): void => {
  out.textContent += `${line}\n`;
};
const linkgate = new URLSearchParams(location.search).get("linkgate") ?? "";

runWebFlow(linkgate, log).then(
  () => {
    document.body.dataset.outcome = "passed";
  },
  (err: unknown) => {
    log(`failed: ${describeError(err)}`);
    document.body.dataset.outcome = "failed";
  },
);
