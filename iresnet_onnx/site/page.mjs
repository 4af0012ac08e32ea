// The page of `iresnet-onnx web`: verifies the export in export/ against its golden vectors with
// onnxruntime-web (WASM) in this browser, by the rules of verify --golden (verify.mjs), shows the
// verdict in <output id="verdict">, each graph's latency, and for a 2-D flow samples from
// inverse.onnx and the density from density.onnx on a grid. Sets data-done="true" on the verdict
// when everything has finished (what a headless browser waits for).
import * as ort from "./ort/ort.wasm.min.mjs";
import { EPS, describe, hashedFiles, judgeCase, modelMetadata, parseTensor, sha256 } from "./verify.mjs";

const EXPORT = "export/";
const ARRAYS = { float32: Float32Array, float64: Float64Array };
const $ = (id) => document.getElementById(id);

ort.env.wasm.wasmPaths = {
  mjs: new URL("./ort/ort-wasm-simd-threaded.mjs", import.meta.url).href,
  wasm: new URL("./ort/ort-wasm-simd-threaded.wasm", import.meta.url).href,
};
// WASM threads need SharedArrayBuffer, which a page only has when its server sends COOP/COEP
ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

async function fetchBytes(name) {
  const response = await fetch(EXPORT + name, { cache: "no-store" });
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function status(text) {
  $("status").textContent = text;
}

function addRow(table, cells, failed = false) {
  const row = $(table).insertRow();
  for (const cell of cells) row.insertCell().textContent = cell;
  if (failed) row.className = "failed";
}

async function checkHashes(manifest, files) {
  const problems = [];
  for (const [name, entry] of hashedFiles(manifest)) {
    let state;
    try {
      files[name] = await fetchBytes(name);
      state = (await sha256(files[name])) === entry.sha256 ? "ok" : "modified";
    } catch {
      state = "missing";
    }
    if (state !== "ok") problems.push(`${name} ${state} since export`);
  }
  const count = hashedFiles(manifest).length;
  addRow("hashes", [`${count} files`, problems.length ? problems.join("; ") : "all sha256 match the manifest"], problems.length > 0);
  return problems;
}

function tensor(array, dims, dtype) {
  return new ort.Tensor(dtype, array, dims);
}

function asOutputs(results) {
  const outputs = {};
  for (const [name, value] of Object.entries(results)) outputs[name] = { data: value.data, dims: value.dims };
  return outputs;
}

async function openSessions(manifest, files) {
  const sessions = {};
  for (const graph of Object.keys(manifest.golden.graphs)) {
    const name = `${graph}.onnx`;
    const bytes = files[name] ?? (await fetchBytes(name));
    sessions[graph] = {
      session: await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all", logSeverityLevel: 3 }),
      k: Number(modelMetadata(bytes)["iresnet_onnx.steps_per_check"] ?? "1"),
    };
  }
  return sessions;
}

async function runCases(manifest, files, sessions) {
  const golden = manifest.golden;
  const rules = { tolerances: golden.tolerances, solver: golden.solver, eps: EPS[manifest.dtype ?? "float32"] };
  const problems = [];
  for (const [graph, cases] of Object.entries(golden.graphs)) {
    const { session, k } = sessions[graph];
    for (const caseName of cases) {
      status(`running ${graph} ${caseName}`);
      const input = parseTensor(files[`${caseName}/input_0.pb`] ?? (await fetchBytes(`${caseName}/input_0.pb`)));
      const expected = {};
      for (let i = 0; i < session.outputNames.length; i++) {
        const name = `${caseName}/output_${i}.pb`;
        const stored = parseTensor(files[name] ?? (await fetchBytes(name)));
        expected[stored.name] = stored;
      }
      const started = performance.now();
      const results = await session.run({ [session.inputNames[0]]: tensor(input.data, input.dims, input.dtype) });
      const ms = performance.now() - started;
      for (const row of judgeCase(graph, caseName, asOutputs(results), expected, { ...rules, k })) {
        const steps = row.iterations ? `[${row.iterations}] vs [${row.expectedIterations}]` : "";
        addRow("cases", [graph, `${caseName.split("/").pop()} ${row.tensor}`, input.dims.join("×"),
          row.maxAbs.toExponential(2), row.tolerance.toExponential(1), steps, ms.toFixed(2),
          row.passed ? "yes" : "NO"], !row.passed);
        if (!row.passed) problems.push(describe(row));
      }
    }
  }
  return problems;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// per-call time of blocks of calls: a page that is not cross-origin isolated reads the clock in
// 100 µs steps, so a single call at batch 1 cannot be timed on its own
async function blocks(session, feeds, rounds = 7) {
  for (let i = 0; i < 3; i++) await session.run(feeds);  // warm-up (and WASM tier-up)
  let calls = 1;
  for (;;) {
    const started = performance.now();
    for (let i = 0; i < calls; i++) await session.run(feeds);
    if (performance.now() - started >= 20 || calls >= 256) break;
    calls *= 2;
  }
  const times = [];
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    for (let i = 0; i < calls; i++) await session.run(feeds);
    times.push((performance.now() - started) / calls);
  }
  return { median: median(times), min: Math.min(...times), max: Math.max(...times), calls };
}

async function latency(manifest, sessions) {
  const n = manifest.input_size;
  const dtype = manifest.dtype ?? "float32";
  for (const [graph, { session }] of Object.entries(sessions)) {
    for (const batch of [1, 1024]) {
      status(`timing ${graph} at batch ${batch}`);
      const data = ARRAYS[dtype].from({ length: batch * n }, (_, i) => Math.sin(i * 12.9898) * 1.5);
      const timed = await blocks(session, { [session.inputNames[0]]: tensor(data, [batch, n], dtype) });
      const us = (ms) => (ms * 1000).toFixed(0);
      addRow("latency", [graph, batch, us(timed.median), `${us(timed.min)}–${us(timed.max)}`, timed.calls]);
    }
  }
}

function setVerdict(problems) {
  const verdict = $("verdict");
  verdict.textContent = problems.length ? `FAILED: ${problems[0]}` : "PASSED";
  verdict.className = problems.length ? "failed" : "passed";
  if (problems.length > 1) $("problems").textContent = problems.slice(1).join("\n");
}

async function main() {
  const manifest = await (await fetch(EXPORT + "manifest.json", { cache: "no-store" })).json();
  $("what").textContent = `${manifest.kind ?? "iResNet"}, n = ${manifest.input_size}, ${manifest.nblocks} blocks, ` +
    `${manifest.dtype}, spectral norm ${manifest.spectral_norm}, inverse ${manifest.inverse}; ` +
    `onnxruntime-web ${ort.env.versions?.web ?? ""} (WASM, ${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads > 1 ? "s" : ""})`;
  const files = {};
  status("sha256 of every file");
  const problems = await checkHashes(manifest, files);
  let sessions = null;
  try {
    sessions = await openSessions(manifest, files);
    problems.push(...(await runCases(manifest, files, sessions)));
  } catch (error) {
    problems.push(`cannot run the golden vectors: ${error.message ?? error}`);
  }
  setVerdict(problems);
  if (sessions !== null) {
    await latency(manifest, sessions);
    if (manifest.input_size === 2 && sessions.inverse && sessions.density) {
      const { drawFlow } = await import("./flow.mjs");
      await drawFlow(ort, sessions, manifest.dtype ?? "float32", status);
    }
  }
  status("done");
}

main()
  .catch((error) => setVerdict([`error: ${error.message ?? error}`]))
  .finally(() => {
    $("verdict").dataset.done = "true";
  });
