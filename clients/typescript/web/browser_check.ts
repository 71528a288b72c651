// Runs the gRPC-Web sandbox flow in a real headless Chromium against a running linkgate, and
// checks that CORS admits only the origin linkgate allows.
//
// Bundles the page's script (web/page.ts, built) with esbuild, serves the page from two tiny
// static servers on loopback, each its own origin and neither linkgate's, and opens it in
// Chromium driven by playwright-core:
// - from the allowed origin (port LINKGATE_WEB_ORIGIN_PORT, which linkgate must list in
//   LINKGATE_GRPC_WEB_ALLOWED_ORIGINS as http://127.0.0.1:<port>), the flow must pass: the
//   sandbox institutions listed, the connection watched until READY, an error's reason read;
// - from another origin (a free port), the browser must refuse the very first call (CORS).
// Each page gets 60 s; any failure exits non-zero with the page's log.
//
//   cd clients/typescript && npm ci && npm run build
//   LINKGATE_ADDR=127.0.0.1:50051 LINKGATE_WEB_ORIGIN_PORT=5173 node dist/web/browser_check.js
//
// CHROMIUM names the browser binary (default /usr/bin/chromium, Debian's package).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { type Browser, chromium } from "playwright-core";

const PAGE_TIMEOUT_MS = 60_000;

const PAGE_HTML = `<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>linkgate over gRPC-Web</title></head>
  <body><pre id="log"></pre><script type="module" src="/page.js"></script></body>
</html>
`;

/** The page's script with its dependencies (connect-web, the generated stubs) in one file. */
async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("./page.js", import.meta.url))],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "error",
  });
  return result.outputFiles[0]!.text;
}

/** Serves the page and its script on 127.0.0.1:`port` (0: a free port); resolves once listening. */
function servePage(script: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://page").pathname;
    if (path === "/") {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE_HTML);
    } else if (path === "/page.js") {
      response.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script);
    } else {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

interface Visit {
  outcome: string;
  log: string;
  /** What the browser said on its console (CORS refusals are reported there). */
  console: string[];
}

/** Opens the page served by `server`, pointed at linkgate's `grpcUrl`, and waits for its outcome. */
async function visit(browser: Browser, server: Server, grpcUrl: string): Promise<Visit> {
  const { port } = server.address() as AddressInfo;
  const page = await browser.newPage();
  const messages: string[] = [];
  page.on("console", (message) => messages.push(message.text()));
  try {
    await page.goto(`http://127.0.0.1:${port}/?linkgate=${encodeURIComponent(grpcUrl)}`);
    await page.waitForSelector("body[data-outcome]", { timeout: PAGE_TIMEOUT_MS });
    const outcome = (await page.getAttribute("body", "data-outcome")) ?? "";
    return { outcome, log: (await page.textContent("#log")) ?? "", console: messages };
  } finally {
    await page.close();
  }
}

function check(condition: boolean, what: string, visit: Visit): void {
  if (!condition) {
    throw new Error(`${what}\n--- page log\n${visit.log}--- console\n${visit.console.join("\n")}`);
  }
}

async function main(): Promise<void> {
  const addr = process.env.LINKGATE_ADDR ?? "127.0.0.1:50051";
  const grpcUrl = addr.includes("://") ? addr : `http://${addr}`;
  const allowedPort = Number(process.env.LINKGATE_WEB_ORIGIN_PORT);
  if (!Number.isInteger(allowedPort) || allowedPort <= 0) throw new Error("set LINKGATE_WEB_ORIGIN_PORT");

  const script = await bundlePage();
  const allowed = await servePage(script, allowedPort);
  const other = await servePage(script, 0);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox"],
    timeout: PAGE_TIMEOUT_MS,
  });
  try {
    const passed = await visit(browser, allowed, grpcUrl);
    process.stdout.write(`page at http://127.0.0.1:${allowedPort} (allowed):\n${passed.log}`);
    check(passed.outcome === "passed", "the flow failed in the browser", passed);
    check(passed.log.includes("Sandbox Bank (ins_sandbox_bank)"), "the sandbox institutions were not listed", passed);
    check(passed.log.includes("connection READY"), "the connection was not seen READY", passed);

    const refused = await visit(browser, other, grpcUrl);
    const { port } = other.address() as AddressInfo;
    process.stdout.write(`page at http://127.0.0.1:${port} (not allowed):\n${refused.log}`);
    check(refused.outcome === "failed", "a page from an origin not allowed got through", refused);
    check(!refused.log.includes("sandbox institutions"), "the first call was answered", refused);
    check(
      refused.console.some((message) => message.includes("CORS policy")),
      "the browser did not report a CORS refusal",
      refused,
    );
  } finally {
    await browser.close();
    allowed.close();
    other.close();
  }
  console.log("browser check passed");
}

await main();
