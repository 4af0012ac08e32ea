// For a 2-D flow, what the demo draws, computed live in this page with onnxruntime-web: the density
// p(x) from density.onnx on a grid, and samples x = f⁻¹(z), z ~ N(0, I), from inverse.onnx.
const EXTENT = 3.5;
const GRID = 161;
const SAMPLES = 3000;
// a perceptual dark-to-light ramp (magma-like), interpolated between these stops
const STOPS = [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]];

function color(t) {
  const x = Math.min(Math.max(t, 0), 1) * (STOPS.length - 1);
  const i = Math.min(Math.floor(x), STOPS.length - 2);
  const f = x - i;
  return STOPS[i].map((c, j) => Math.round(c + f * (STOPS[i + 1][j] - c)));
}

// a seeded normal generator (mulberry32 + Box–Muller): the same samples on every visit
function normals(count, seed) {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const values = new Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    values[i] = r * Math.cos(angle);
    if (i + 1 < count) values[i + 1] = r * Math.sin(angle);
  }
  return values;
}

function axes(context, size) {
  context.strokeStyle = "rgba(255,255,255,0.25)";
  context.beginPath();
  context.moveTo(size / 2, 0);
  context.lineTo(size / 2, size);
  context.moveTo(0, size / 2);
  context.lineTo(size, size / 2);
  context.stroke();
}

async function drawDensity(ort, session, dtype, canvas) {
  const Type = dtype === "float64" ? Float64Array : Float32Array;
  const points = new Type(GRID * GRID * 2);
  for (let row = 0; row < GRID; row++) {
    for (let col = 0; col < GRID; col++) {
      const at = 2 * (row * GRID + col);
      points[at] = -EXTENT + (2 * EXTENT * col) / (GRID - 1);
      points[at + 1] = EXTENT - (2 * EXTENT * row) / (GRID - 1);
    }
  }
  const started = performance.now();
  const results = await session.run({ [session.inputNames[0]]: new ort.Tensor(dtype, points, [GRID * GRID, 2]) });
  const ms = performance.now() - started;
  const density = Array.from(results.log_prob.data, (v) => Math.exp(v));
  const largest = Math.max(...density.filter(Number.isFinite));
  const context = canvas.getContext("2d");
  const image = context.createImageData(GRID, GRID);
  density.forEach((p, i) => {
    const [r, g, b] = color(p / largest);
    image.data.set([r, g, b, 255], 4 * i);
  });
  const scratch = new OffscreenCanvas(GRID, GRID);
  scratch.getContext("2d").putImageData(image, 0, 0);
  context.imageSmoothingEnabled = true;
  context.drawImage(scratch, 0, 0, canvas.width, canvas.height);
  axes(context, canvas.width);
  return { ms, rows: GRID * GRID };
}

async function drawSamples(ort, session, dtype, canvas, seed) {
  const Type = dtype === "float64" ? Float64Array : Float32Array;
  const z = Type.from(normals(SAMPLES * 2, seed));
  const started = performance.now();
  const results = await session.run({ [session.inputNames[0]]: new ort.Tensor(dtype, z, [SAMPLES, 2]) });
  const ms = performance.now() - started;
  const x = results.x.data;
  const context = canvas.getContext("2d");
  const size = canvas.width;
  context.fillStyle = "#0b0b1a";
  context.fillRect(0, 0, size, size);
  axes(context, size);
  context.fillStyle = "rgba(254, 159, 109, 0.55)";
  for (let i = 0; i < SAMPLES; i++) {
    const px = ((x[2 * i] + EXTENT) / (2 * EXTENT)) * size;
    const py = ((EXTENT - x[2 * i + 1]) / (2 * EXTENT)) * size;
    context.fillRect(px - 1.2, py - 1.2, 2.4, 2.4);
  }
  return { ms, steps: Array.from(results.iterations.data, Number) };
}

export async function drawFlow(ort, sessions, dtype, status) {
  document.getElementById("flow").hidden = false;
  status("density.onnx on the grid");
  const density = await drawDensity(ort, sessions.density.session, dtype, document.getElementById("density"));
  document.getElementById("density-note").textContent =
    `p(x) from density.onnx on a ${GRID}×${GRID} grid over [−${EXTENT}, ${EXTENT}]²: ${density.rows} rows in ${density.ms.toFixed(0)} ms`;
  let seed = 1;
  const sample = async () => {
    status("inverse.onnx on prior samples");
    const drawn = await drawSamples(ort, sessions.inverse.session, dtype, document.getElementById("samples"), seed++);
    document.getElementById("samples-note").textContent =
      `${SAMPLES} samples x = f⁻¹(z), z ~ N(0, I), from inverse.onnx in ${drawn.ms.toFixed(0)} ms; ` +
      `fixed-point steps per block [${drawn.steps.join(", ")}]`;
    status("done");
  };
  await sample();
  document.getElementById("resample").onclick = sample;
}
