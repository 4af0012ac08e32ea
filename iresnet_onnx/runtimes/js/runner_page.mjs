// The page side of web:wasm (see web_runner.mjs): one onnxruntime-web session on the WASM backend.
import * as ort from "/ort/ort.wasm.min.mjs";

const ARRAYS = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array };
let session = null;

function toBase64(bytes) {
  let text = "";
  for (let start = 0; start < bytes.length; start += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(start, start + 0x8000));
  }
  return btoa(text);
}

window.ortLoad = async (id, threads) => {
  ort.env.wasm.wasmPaths = { mjs: "/ort/ort-wasm-simd-threaded.mjs", wasm: "/ort/ort-wasm-simd-threaded.wasm" };
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
  const bytes = new Uint8Array(await (await fetch(`/model/${id}`)).arrayBuffer());
  session = await ort.InferenceSession.create(bytes, {
    executionProviders: ["wasm"], graphOptimizationLevel: "all", logSeverityLevel: 3,
  });
  return {
    inputs: session.inputNames, outputs: session.outputNames, threads: ort.env.wasm.numThreads,
    web: ort.env.versions?.web,
  };
};

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

window.ortRun = async (entries, base64) => {
  const payload = fromBase64(base64).buffer;
  const feeds = {};
  for (const { name, dtype, dims, offset, bytes } of entries) {
    feeds[name] = new ort.Tensor(dtype, new ARRAYS[dtype](payload.slice(offset, offset + bytes)), dims);
  }
  const started = performance.now();
  const results = await session.run(feeds);
  const ms = performance.now() - started;
  const tensors = Object.entries(results).map(([name, tensor]) => ({
    name, dtype: tensor.type, dims: Array.from(tensor.dims, Number),
    base64: toBase64(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)),
  }));
  return { tensors, ms };
};

// the input tensors back as they arrived in the page (the transport's test)
window.ortEcho = async (entries, base64) => {
  const payload = fromBase64(base64);
  const tensors = entries.map(({ name, dtype, dims, offset, bytes }) => ({
    name, dtype, dims, base64: toBase64(payload.subarray(offset, offset + bytes)),
  }));
  return { tensors, ms: 0 };
};

window.ortReady = true;
