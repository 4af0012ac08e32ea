// The golden-vector check of `iresnet-onnx verify --golden`, ported to JavaScript for the page
// (page.mjs); no DOM and no onnxruntime here, so Node.js runs it too (tests/test_site.py holds
// it against the Python rule). Ported from iresnet_onnx/_golden.py, _tolerances.py, _manifest.py:
//   - sha256 of every file the manifest lists, except the checkpoint (verify --golden skips it);
//   - per golden case, every per-row output against the stored one (forward: y; inverse: x;
//     density: log_prob, log_det, z): max|Δ| ≤ tolerance[check] · max(1, max|expected|), computed
//     in float64 as numpy does, the check per output as _golden._CHECKS names it;
//   - the inverse's x row: StepRule.judge, line for line (step counts rounded up to the graph's K,
//     the boundary band of 16 eps, the tolerance widened by the extra steps).

export const BOUNDARY_ULPS = 16;
export const EPS = { float32: 2 ** -23, float64: 2 ** -52 };
export const PER_ROW = { forward: ["y"], inverse: ["x"], density: ["log_prob", "log_det", "z"] };
export const CHECKS = { y: "forward", x: "inverse", log_prob: "density", log_det: "density", z: "forward" };

// --- protobuf: just enough of onnx.proto for TensorProto and ModelProto's metadata_props ---

function fields(bytes) {
  const found = [];
  let at = 0;
  const varint = () => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = bytes[at++];
      if (byte === undefined) throw new Error("truncated protobuf");
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < bytes.length) {
    const key = Number(varint());
    const number = key >>> 3;
    const wire = key & 7;
    if (wire === 0) found.push({ number, wire, value: varint() });
    else if (wire === 1) found.push({ number, wire, value: bytes.subarray(at, (at += 8)) });
    else if (wire === 5) found.push({ number, wire, value: bytes.subarray(at, (at += 4)) });
    else if (wire === 2) {
      const length = Number(varint());
      found.push({ number, wire, value: bytes.subarray(at, (at += length)) });
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (at > bytes.length) throw new Error("truncated protobuf");
  }
  return found;
}

function varints(bytes) {
  const values = [];
  let value = 0n;
  let shift = 0n;
  for (const byte of bytes) {
    value |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if (byte < 0x80) {
      values.push(BigInt.asIntN(64, value));
      value = 0n;
      shift = 0n;
    }
  }
  return values;
}

const TYPES = {
  1: ["float32", Float32Array, 4], 11: ["float64", Float64Array, 10], 7: ["int64", BigInt64Array, 7],
  6: ["int32", Int32Array, 5],
};

// a copy in a fresh, aligned ArrayBuffer (a Node.js Buffer's slice is a view into a shared pool)
function copyTyped(Type, bytes) {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Type(copy.buffer);
}

// A TensorProto file (an ONNX test-data .pb) as {name, dtype, dims, data}.
export function parseTensor(bytes) {
  const tensor = { name: "", dims: [], type: 0, raw: null, packed: [] };
  for (const { number, wire, value } of fields(bytes)) {
    if (number === 1) tensor.dims.push(...(wire === 2 ? varints(value) : [value]).map(Number));
    else if (number === 2) tensor.type = Number(value);
    else if (number === 8) tensor.name = new TextDecoder().decode(value);
    else if (number === 9) tensor.raw = value;
    else if ([4, 5, 7, 10].includes(number)) tensor.packed.push({ number, wire, value });
  }
  const spec = TYPES[tensor.type];
  if (spec === undefined) throw new Error(`tensor ${tensor.name}: unsupported data type ${tensor.type}`);
  const [dtype, Type, field] = spec;
  let data;
  if (tensor.raw !== null) data = copyTyped(Type, tensor.raw);
  else if (dtype === "int64" || dtype === "int32") {
    const all = tensor.packed.filter((f) => f.number === field).flatMap((f) => (f.wire === 2 ? varints(f.value) : [f.value]));
    data = dtype === "int64" ? BigInt64Array.from(all, (v) => BigInt.asIntN(64, v)) : Int32Array.from(all, Number);
  } else {
    const chunks = tensor.packed.filter((f) => f.number === field).map((f) => f.value);
    const joined = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (joined.set(c, at), at + c.length), 0);
    data = copyTyped(Type, joined);
  }
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`tensor ${tensor.name}: ${data.length} values for dims [${tensor.dims}]`);
  return { name: tensor.name, dtype, dims: tensor.dims, data };
}

// ModelProto's metadata_props (field 14: key 1, value 2) — how the page learns a graph's K.
export function modelMetadata(bytes) {
  const metadata = {};
  const text = new TextDecoder();
  for (const { number, wire, value } of fields(bytes)) {
    if (number !== 14 || wire !== 2) continue;
    const entry = {};
    for (const part of fields(value)) entry[part.number] = text.decode(part.value);
    metadata[entry[1] ?? ""] = entry[2] ?? "";
  }
  return metadata;
}

// --- sha256: WebCrypto where the page is a secure context (https, localhost), else this port ---

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256Portable(bytes) {
  const padded = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor((bytes.length * 8) / 2 ** 32));
  view.setUint32(padded.length - 4, (bytes.length * 8) >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
      const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      [k, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    [a, b, c, d, e, f, g, k].forEach((v, i) => (h[i] = (h[i] + v) >>> 0));
  }
  return Array.from(h, (v) => v.toString(16).padStart(8, "0")).join("");
}

export async function sha256(bytes) {
  if (globalThis.crypto?.subtle) {
    const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest, (v) => v.toString(16).padStart(2, "0")).join("");
  }
  return sha256Portable(bytes);
}

// --- the comparison rules (iresnet_onnx/_tolerances.py) ---

function maxAbs(values) {
  let largest = 0;
  for (const v of values) {
    const a = Math.abs(Number(v));
    if (Number.isNaN(a)) return NaN;
    if (a > largest) largest = a;
  }
  return largest;
}

// compare(): max|actual − expected| against tolerances[check] · max(1, max|expected|)
export function compare(check, actual, expected, tolerances) {
  const scale = Math.max(1, maxAbs(expected.data));
  let error = 0;
  if (actual.data.length !== expected.data.length) error = Infinity;
  for (let i = 0; i < actual.data.length && error !== Infinity; i++) {
    const d = Math.abs(Number(actual.data[i]) - Number(expected.data[i]));
    if (Number.isNaN(d)) { error = NaN; break; }
    if (d > error) error = d;
  }
  const tolerance = tolerances[check] * (Number.isNaN(scale) ? 1 : scale);
  return { maxAbs: error, tolerance, passed: error <= tolerance };
}

// StepRule.graph_steps: the steps a graph testing every k steps takes where eager takes eagerSteps
export function graphSteps(eagerSteps, maxiter, k) {
  const turns = Math.ceil(eagerSteps / k) * k;
  return turns <= Math.floor(maxiter / k) * k ? turns : Math.min(eagerSteps, maxiter);
}

// StepRule.judge: sets row.iterations / row.expectedIterations, widens row.tolerance, sets row.passed
export function judgeSteps(row, outputs, expected, k, solver, eps) {
  const steps = Array.from(outputs.iterations.data, Number);
  const eagerSteps = Array.from(expected.iterations.data, Number);
  row.iterations = steps;
  row.expectedIterations = eagerSteps;
  if (steps.length !== eagerSteps.length) {
    row.passed = false;
    return row;
  }
  const { atol, rtol, maxiter } = solver;
  const x = expected.x.data;
  const magnitude = x.length ? maxAbs(x) : 0;
  const band = BOUNDARY_ULPS * eps * Math.max(1, magnitude);
  const residuals = Array.from(outputs.residual.data, Number);
  const eagerResiduals = Array.from(expected.residual.data, Number);
  let widen = 0;
  let stepsOk = true;
  steps.forEach((taken, i) => {
    const eagerTaken = eagerSteps[i];
    const onBoundary = [residuals[i], eagerResiduals[i]].some((r) => Math.abs(r - atol) <= band);
    const wanted = graphSteps(eagerTaken, maxiter, k);
    const converged = residuals[i] <= atol;
    const eagerConverged = eagerResiduals[i] <= atol;
    let ok;
    if (taken === wanted) ok = converged === eagerConverged || onBoundary;
    else {
      const nearby = [-1, 1].map((d) => graphSteps(eagerTaken + d, maxiter, k));
      ok = nearby.includes(taken) && onBoundary;
    }
    // every row may run up to K − 1 steps past its own stop (as _tolerances.StepRule says)
    widen = Math.max(widen, Math.abs(taken - eagerTaken), k - 1);
    stepsOk = stepsOk && ok;
  });
  if (widen) row.tolerance += widen * (atol + rtol * magnitude);
  row.passed = stepsOk && row.maxAbs <= row.tolerance;
  return row;
}

// One golden case: its outputs (by name) against the stored ones → verify --golden's rows
export function judgeCase(graph, caseName, outputs, expected, { tolerances, solver, k, eps }) {
  return PER_ROW[graph].map((tensor) => {
    if (!(tensor in expected)) throw new Error(`golden case ${caseName}: no stored ${tensor}`);
    const row = { graph, case: caseName, tensor, ...compare(CHECKS[tensor], outputs[tensor], expected[tensor], tolerances) };
    if (tensor === "x") judgeSteps(row, outputs, expected, k, solver, eps);
    return row;
  });
}

export function describe(row) {
  const steps = row.iterations ? `, steps [${row.iterations}] vs expected [${row.expectedIterations}]` : "";
  return `${row.graph} ${row.case} ${row.tensor}: max|Δ| ${row.maxAbs.toPrecision(3)}, tolerance ${row.tolerance.toPrecision(3)}${steps}`;
}

// The files verify --golden hashes: every file of the manifest but the checkpoint
export function hashedFiles(manifest) {
  const checkpoint = manifest.checkpoint ?? "model.pt";
  return Object.entries(manifest.files).filter(([name]) => name !== checkpoint);
}
