// web:wasm — onnxruntime-web's WASM backend in headless Chromium (Debian's), driven by
// playwright-core from this Node.js process: the sessions (graphs), keyed by their ids, live in one
// runner page per thread count. argv: NODE_MODULES CHROMIUM. A server on 127.0.0.1 inside this
// process serves the pages onnxruntime-web's .mjs and .wasm, the runner page and each session's
// graph, and takes each session's WebSocket (channel.mjs), on which its calls travel as raw bytes.
// Requests from Python (see protocol.mjs): load {id, threads} + the graph's bytes; run / echo {id,
// tensors} + their bytes; unload {id}; visit {url, ...} (open a page, wait for its verdict,
// optionally take a screenshot); close.

import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { Channel, message, parseMessage } from "./channel.mjs";
import { requireFrom, serve } from "./protocol.mjs";

const [nodeModules, chromiumPath] = process.argv.slice(2);
const here = fileURLToPath(new URL(".", import.meta.url));
const ortDist = join(nodeModules, "onnxruntime-web", "dist");
const { chromium } = requireFrom(nodeModules)("playwright-core");

// Chromium on a machine without a network hangs on connections it opens by itself (updates, QUIC
// probes, sync); these flags keep it to the pages it is given. playwright-core adds --headless,
// --no-sandbox (no chromiumSandbox) and a fresh temporary --user-data-dir of its own.
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const TYPES = { ".mjs": "text/javascript", ".html": "text/html", ".wasm": "application/wasm" };
const SERVED = {
  "/runner.html": join(here, "runner.html"),
  "/runner_page.mjs": join(here, "runner_page.mjs"),
  "/ort/ort.wasm.min.mjs": join(ortDist, "ort.wasm.min.mjs"),
  "/ort/ort-wasm-simd-threaded.mjs": join(ortDist, "ort-wasm-simd-threaded.mjs"),
  "/ort/ort-wasm-simd-threaded.wasm": join(ortDist, "ort-wasm-simd-threaded.wasm"),
};

// the sessions by id: each one's graph is served to its page, and its calls cross its own channel
const sessions = new Map();
const server = createServer(async (request, response) => {
  const path = new URL(request.url, "http://localhost").pathname;
  const [, kind, id] = path.split("/");
  const session = sessions.get(id);
  const body = session && kind === "model" ? session.model : null;
  const file = SERVED[path];
  if (body === null && file === undefined) {
    response.writeHead(404).end();
    return;
  }
  const extension = path.slice(path.lastIndexOf("."));
  // cross-origin isolation lets onnxruntime-web use WASM threads (SharedArrayBuffer) if asked;
  // onnxruntime-web's files may be cached: Chromium then reuses the compiled WASM in the next page
  response.writeHead(200, {
    "Content-Type": TYPES[extension] ?? "application/octet-stream",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cache-Control": file === undefined ? "no-store" : "max-age=86400",
  });
  response.end(body ?? (await readFile(file)));
});
// each page opens a WebSocket to /channel/<id> once its session is loaded: its calls cross there
server.on("upgrade", (request, socket, head) => {
  const [, kind, id] = new URL(request.url, "http://localhost").pathname.split("/");
  const session = sessions.get(id);
  if (kind !== "channel" || session === undefined || session.channel) {
    socket.destroy();
    return;
  }
  session.channel = new Channel(request, socket);
  if (head.length) session.channel.receive(head);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: chromiumPath, args: FLAGS, headless: true });
// one browser context for the runner's pages: they share its HTTP cache (onnxruntime-web's 14 MB
// WASM module is fetched once)
const context = await browser.newContext();

// The runner pages by thread count (onnxruntime-web fixes its WASM threads when it starts). A page
// starts onnxruntime-web's WASM once, about a second; its later sessions pay only for their graph.
const pages = new Map();

function runnerPage(threads) {
  let page = pages.get(threads);
  if (page === undefined) {
    page = openRunnerPage();
    pages.set(threads, page);
    // a page that failed to open or crashed is forgotten: the next session opens a new one
    page.then((opened) => opened.on("crash", () => pages.delete(threads)), () => pages.delete(threads));
  }
  return page;
}

async function openRunnerPage() {
  const page = await context.newPage();
  const lines = [];
  page.on("console", (message) => lines.push(message.text()));
  page.on("pageerror", (error) => lines.push(String(error)));
  await page.goto(`${origin}/runner.html`);
  try {
    await page.waitForFunction(() => window.ortReady === true, null, { timeout: 60000 });
  } catch (error) {
    await page.close().catch(() => {});
    throw new Error(`onnxruntime-web did not start in Chromium: ${error.message} (${lines.join(" | ")})`);
  }
  return page;
}

async function load(header, payload) {
  const started = performance.now();
  const threads = header.threads ?? 1;
  const session = { model: Buffer.from(payload), page: null };
  sessions.set(header.id, session);
  try {
    session.page = await runnerPage(threads);
    console.error(`session ${header.id}: page ready in ${(performance.now() - started).toFixed(0)} ms`);
    const result = await session.page.evaluate(([id, count]) => window.ortLoad(id, count), [header.id, threads]);
    session.model = null;  // the page holds the session now
    if (session.channel === undefined) throw new Error("the runner page opened no channel");
    console.error(`session ${header.id} created in ${(performance.now() - started).toFixed(0)} ms`);
    return { header: { ...result, version: `onnxruntime-web ${result.web} in Chromium ${browser.version()}` } };
  } catch (error) {
    await unload(header);
    throw error;
  }
}

// run: the graph on the tensors; echo: the tensors back through the page (the transport's test).
// The page answers with its outputs' entries (offsets into its payload) and the payload as is.
async function run(header, payload, op = "run") {
  const session = sessions.get(header.id);
  if (session?.channel === undefined) throw new Error(`no session ${header.id}`);
  const reply = parseMessage(await session.channel.request(message({ op, tensors: header.tensors }, payload)));
  if (reply.header.error) throw new Error(reply.header.error);
  return { header: { tensors: reply.header.tensors, ms: reply.header.ms }, payload: reply.payload };
}

// the session leaves its page (which stays for the next session) and frees its WASM memory there
async function unload(header) {
  const session = sessions.get(header.id);
  sessions.delete(header.id);
  session?.channel?.close();
  await session?.page?.evaluate((id) => window.ortUnload(id), header.id).catch(() => {});
  return {};
}

async function visit(header) {
  const viewport = { width: header.width ?? 1280, height: header.height ?? 900 };
  const other = await browser.newPage({ viewport });
  const lines = [];
  other.on("console", (message) => lines.push(message.text()));
  other.on("pageerror", (error) => lines.push(String(error)));
  try {
    await other.goto(header.url);
    const selector = header.selector ?? "#verdict";
    await other.waitForFunction(
      (wanted) => document.querySelector(wanted)?.dataset.done === "true",
      selector,
      { timeout: (header.timeout ?? 120) * 1000 },
    );
    const text = await other.evaluate((wanted) => document.querySelector(wanted).textContent, selector);
    const body = await other.evaluate(() => document.body.innerText);
    if (header.screenshot) await other.screenshot({ path: header.screenshot, fullPage: true });
    return { header: { text, body, console: lines } };
  } catch (error) {
    error.message = `${error.message} (page console: ${lines.slice(-5).join(" | ")})`;
    throw error;
  } finally {
    await other.close();
  }
}

async function end() {
  await browser.close().catch(() => {});
  server.close();
}

const echo = (header, payload) => run(header, payload, "echo");
await serve({ load, run, echo, unload, visit, close: async () => ({}) }, end);
