// The page side of web:wasm (see web_runner.mjs): onnxruntime-web sessions on the WASM backend, by
// id, each one's calls arriving on a WebSocket of its own to the runner (channel.mjs: raw bytes, no
// base64).
import * as ort from "/ort/ort.wasm.min.mjs";

const ARRAYS = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array };
const sessions = new Map();

// [u32 LE header length][header JSON][parts...] as one ArrayBuffer
function pack(header, parts) {
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + text.length + parts.reduce((n, part) => n + part.byteLength, 0));
  new DataView(out.buffer).setUint32(0, text.length, true);
  out.set(text, 4);
  parts.reduce((at, part) => (out.set(part, at), at + part.byteLength), 4 + text.length);
  return out.buffer;
}

function unpack(buffer) {
  const size = new DataView(buffer).getUint32(0, true);
  return { header: JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, size))), payload: buffer.slice(4 + size) };
}

// tensors as entries (offsets into the payload) and the byte views to send
function entries(tensors) {
  const list = [];
  const parts = [];
  let offset = 0;
  for (const [name, { dtype, dims, data }] of Object.entries(tensors)) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    list.push({ name, dtype, dims: Array.from(dims, Number), offset, bytes: bytes.byteLength });
    parts.push(bytes);
    offset += bytes.byteLength;
  }
  return { list, parts };
}

function tensorsOf(list, payload) {
  const tensors = {};
  for (const { name, dtype, dims, offset, bytes } of list) {
    tensors[name] = { dtype, dims, data: new ARRAYS[dtype](payload.slice(offset, offset + bytes)) };
  }
  return tensors;
}

async function answer(session, buffer) {
  const { header, payload } = unpack(buffer);
  try {
    const inputs = tensorsOf(header.tensors, payload);
    let outputs = inputs;
    let ms = 0;
    if (header.op === "run") {
      const feeds = {};
      for (const [name, { dtype, dims, data }] of Object.entries(inputs)) feeds[name] = new ort.Tensor(dtype, data, dims);
      const started = performance.now();
      const results = await session.run(feeds);
      ms = performance.now() - started;
      outputs = {};
      for (const [name, tensor] of Object.entries(results)) outputs[name] = { dtype: tensor.type, dims: tensor.dims, data: tensor.data };
    }
    const { list, parts } = entries(outputs);
    return pack({ tensors: list, ms }, parts);
  } catch (error) {
    return pack({ error: String(error?.message ?? error) }, []);
  }
}

window.ortLoad = async (id, threads) => {
  ort.env.wasm.wasmPaths = { mjs: "/ort/ort-wasm-simd-threaded.mjs", wasm: "/ort/ort-wasm-simd-threaded.wasm" };
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
  const bytes = new Uint8Array(await (await fetch(`/model/${id}`)).arrayBuffer());
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ["wasm"], graphOptimizationLevel: "all", logSeverityLevel: 3,
  });
  sessions.set(id, session);
  await new Promise((resolve, reject) => {
    const channel = new WebSocket(`ws://${location.host}/channel/${id}`);
    channel.binaryType = "arraybuffer";
    channel.onopen = resolve;
    channel.onerror = () => reject(new Error("the runner refused the page's channel"));
    channel.onmessage = async (event) => channel.send(await answer(session, event.data));
  });
  return {
    inputs: session.inputNames, outputs: session.outputNames, threads: ort.env.wasm.numThreads,
    web: ort.env.versions?.web,
  };
};

window.ortUnload = async (id) => {
  const session = sessions.get(id);
  sessions.delete(id);
  await session?.release();
};

window.ortReady = true;
