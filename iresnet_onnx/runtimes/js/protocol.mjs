// The framed protocol between Python (iresnet_onnx/runtimes/_js.py) and a runner on its
// stdin/stdout. A frame is [u32 LE header length][u32 LE payload length][header: UTF-8 JSON]
// [payload: raw bytes]. Tensors travel as raw little-endian bytes in the payload (exact: no decimal
// text round trip); the header lists them as {name, dtype, dims, offset, bytes}.

import { createRequire } from "node:module";
import { join } from "node:path";

export const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  bool: Uint8Array,
};

// require() of the npm packages from the node_modules folder Python names: the runner files live
// inside the Python package, where Node's own lookup would never find them.
export function requireFrom(nodeModules) {
  return createRequire(join(nodeModules, "iresnet-onnx-runner.js"));
}

// tensors of a header/payload as {name: {dtype, dims, data: TypedArray}}; each array is copied into
// its own ArrayBuffer, because a Buffer's slice of the stdin pool need not be aligned to 8 bytes
export function decodeTensors(entries, payload) {
  const tensors = {};
  for (const { name, dtype, dims, offset, bytes } of entries) {
    const Type = ARRAYS[dtype];
    if (Type === undefined) throw new Error(`unsupported tensor type ${dtype} for ${name}`);
    const start = payload.byteOffset + offset;
    const copy = payload.buffer.slice(start, start + bytes);
    tensors[name] = { dtype, dims, data: new Type(copy) };
  }
  return tensors;
}

// {name: {dtype, dims, data}} as header entries and one payload Buffer
export function encodeTensors(tensors) {
  const entries = [];
  const parts = [];
  let offset = 0;
  for (const [name, { dtype, dims, data }] of Object.entries(tensors)) {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    entries.push({ name, dtype, dims: Array.from(dims, Number), offset, bytes: bytes.length });
    parts.push(bytes);
    offset += bytes.length;
  }
  return { entries, payload: Buffer.concat(parts) };
}

function writeFrame(header, payload = Buffer.alloc(0)) {
  const text = Buffer.from(JSON.stringify(header), "utf8");
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32LE(text.length, 0);
  lengths.writeUInt32LE(payload.length, 4);
  // stdout to a pipe is synchronous in Node.js on Linux: the frame leaves whole, in order
  process.stdout.write(Buffer.concat([lengths, text, payload]));
}

// Answer each request frame with handlers[header.op](header, payload) → {header, payload}, one at a
// time, in order. An exception becomes {ok: false, error, kind}; stdin's end ends the runner.
export async function serve(handlers, onEnd) {
  // stdout carries frames only: a library's console.log must not corrupt the stream
  console.log = console.error;
  console.info = console.error;
  console.warn = console.error;
  // chunks are joined once a whole frame is there (joining at every 64 KiB chunk is quadratic)
  let chunks = [];
  let held = 0;
  let wanted = null;
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
    held += chunk.length;
    for (;;) {
      if (wanted === null && held >= 8) {
        const head = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        chunks = [head];
        wanted = 8 + head.readUInt32LE(0) + head.readUInt32LE(4);
      }
      if (wanted === null || held < wanted) break;
      const buffered = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      const headerBytes = buffered.readUInt32LE(0);
      const header = JSON.parse(buffered.subarray(8, 8 + headerBytes).toString("utf8"));
      const payload = buffered.subarray(8 + headerBytes, wanted);
      const rest = buffered.subarray(wanted);
      chunks = rest.length ? [rest] : [];
      held = rest.length;
      wanted = null;
      await answer(handlers, header, payload);
      if (header.op === "close") {
        await onEnd?.();
        process.exit(0);
      }
    }
  }
  await onEnd?.();
  process.exit(0);
}

// the tensors back as they came: what the tests hold the transport to (bytes in = bytes out)
function echo(header, payload) {
  const { entries, payload: bytes } = encodeTensors(decodeTensors(header.tensors, payload));
  return { header: { tensors: entries }, payload: bytes };
}

async function answer(handlers, header, payload) {
  const handler = handlers[header.op] ?? (header.op === "echo" ? echo : undefined);
  try {
    if (handler === undefined) throw new Error(`unknown request ${header.op}`);
    const result = (await handler(header, payload)) ?? {};
    writeFrame({ ok: true, ...(result.header ?? {}) }, result.payload);
  } catch (error) {
    const message = error?.message ?? String(error);
    writeFrame({ ok: false, error: message, kind: error?.kind ?? "runtime" });
  }
}
