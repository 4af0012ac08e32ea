// node:cpu — onnxruntime-node in this one long-lived Node.js process, one graph per process.
// argv: NODE_MODULES. Requests (see protocol.mjs): load {threads} + the graph's bytes; run {tensors}
// + their bytes → the outputs and the milliseconds session.run took; close.

import { ARRAYS, decodeTensors, encodeTensors, requireFrom, serve } from "./protocol.mjs";

const ort = requireFrom(process.argv[2])("onnxruntime-node");
let session = null;

async function load(header, payload) {
  const options = { executionProviders: ["cpu"], graphOptimizationLevel: "all", logSeverityLevel: 3 };
  if (header.threads) {
    options.intraOpNumThreads = header.threads;
    options.interOpNumThreads = 1;
  }
  session = await ort.InferenceSession.create(new Uint8Array(payload), options);
  return { header: { inputs: session.inputNames, outputs: session.outputNames, version: `onnxruntime-node ${ort.env.versions?.node}` } };
}

async function run(header, payload) {
  const feeds = {};
  for (const [name, { dtype, dims, data }] of Object.entries(decodeTensors(header.tensors, payload))) {
    feeds[name] = new ort.Tensor(dtype, data, dims);
  }
  const started = performance.now();
  const results = await session.run(feeds);
  const ms = performance.now() - started;
  const outputs = {};
  for (const [name, tensor] of Object.entries(results)) {
    if (ARRAYS[tensor.type] === undefined) throw new Error(`output ${name} has type ${tensor.type}`);
    outputs[name] = { dtype: tensor.type, dims: tensor.dims, data: tensor.data };
  }
  const { entries, payload: bytes } = encodeTensors(outputs);
  return { header: { tensors: entries, ms }, payload: bytes };
}

await serve({ load, run, close: async () => ({}) }, async () => session?.release?.());
