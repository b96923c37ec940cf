/* The laws of cnnlab.shapes, cnnlab.receptive_field and cnnlab.atrous, for the page.
 *
 * Each function checks its arguments in the order the Python function does and throws a
 * LawError whose message names the argument at fault, where Python raises; otherwise it
 * returns the same integers. Arguments are the reader's text (or numbers).
 */
class LawError extends Error {}

function fail(message) {
  throw new LawError(message);
}

/* The int in `raw` (a string from a control, or a number); refuses anything else. */
function toInt(name, raw) {
  if (typeof raw === "number") {
    if (Number.isSafeInteger(raw)) return raw;
    fail(`${name} must be an int, got ${raw}`);
  }
  const text = String(raw).trim();
  if (!/^[+-]?\d+$/.test(text)) fail(`${name} must be an int, got '${text}'`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) fail(`${name} is too large for the page: ${text}`);
  return value;
}

function atLeast(name, value, minimum) {
  if (value < minimum) fail(`${name} must be >= ${minimum}, got ${value}`);
  return value;
}

function checkInt(name, raw, minimum) {
  const value = toInt(name, raw);
  return minimum === undefined ? value : atLeast(name, value, minimum);
}

/* Window(kernel_size, stride, padding, dilation) of cnnlab.geometry, one axis. */
function convWindow(kernelSize, stride, padding, dilation) {
  const p = toInt("padding", padding);
  const k = checkInt("kernel_size", kernelSize, 1);
  const s = checkInt("stride", stride, 1);
  const d = checkInt("dilation", dilation, 1);
  atLeast("padding", p, 0);
  return { k, s, p, d, span: d * (k - 1) + 1 };
}

/* cnnlab.shapes.effective_kernel_size: d(k - 1) + 1. */
function effectiveKernelSize(kernelSize, dilation) {
  const k = checkInt("kernel_size", kernelSize, 1);
  const d = checkInt("dilation", dilation, 1);
  return d * (k - 1) + 1;
}

/* cnnlab.shapes.conv_output_size: o = floor((i + 2p - d(k - 1) - 1) / s) + 1. */
function convOutputSize(size, kernelSize, stride, padding, dilation) {
  const w = convWindow(kernelSize, stride, padding, dilation);
  const i = checkInt("size", size, 1);
  const padded = i + 2 * w.p;
  if (w.span > padded) {
    fail(
      `kernel_size ${w.k} with dilation ${w.d} spans ${w.span} pixels, more than the ` +
        `padded input ${padded} (size ${i}, padding ${w.p} on each side)`,
    );
  }
  return Math.floor((padded - w.span) / w.s) + 1;
}

/* cnnlab.shapes.transposed_output_size: o = (i - 1)s - 2p + d(k - 1) + output_padding + 1. */
function transposedOutputSize(size, kernelSize, stride, padding, outputPadding, dilation) {
  const i = checkInt("size", size, 1);
  const w = convWindow(kernelSize, stride, padding, dilation);
  const op = checkInt("output_padding", outputPadding, 0);
  if (op >= Math.max(w.s, w.d)) {
    fail(`output_padding ${op} must be smaller than stride ${w.s} or dilation ${w.d}`);
  }
  const o = (i - 1) * w.s - 2 * w.p + w.span + op;
  if (o < 1) {
    fail(
      `padding ${w.p} crops away the whole output (size ${i}, kernel_size ${w.k}, ` +
        `stride ${w.s}, dilation ${w.d})`,
    );
  }
  return o;
}

/* cnnlab.receptive_field.Layer: the window of layer `index` (counted from 1 for the reader). */
function layerWindow(index, layer) {
  try {
    return convWindow(layer.kernel_size, layer.stride, layer.padding, layer.dilation);
  } catch (error) {
    if (error instanceof LawError) fail(`layer ${index}: ${error.message}`);
    throw error;
  }
}

/* cnnlab.receptive_field.receptive_field_steps: (r, J, P) after every layer. */
function receptiveFieldSteps(layers) {
  const windows = layers.map((layer, index) => layerWindow(index + 1, layer));
  let r = 1;
  let j = 1;
  let p = 0;
  const steps = [];
  for (const w of windows) {
    r += (w.span - 1) * j;
    p += w.p * j;
    j *= w.s;
    steps.push({ size: r, stride: j, padding: p });
  }
  return { windows, steps, field: steps.length ? steps[steps.length - 1] : { size: 1, stride: 1, padding: 0 } };
}

/* The output size after every layer: conv_output_size applied layer by layer. */
function stackOutputSizes(size, layers) {
  const windows = layers.map((layer, index) => layerWindow(index + 1, layer));
  let current = checkInt("size", size, 1);
  const sizes = [current];
  windows.forEach((w, index) => {
    try {
      current = convOutputSize(current, w.k, w.s, w.p, w.d);
    } catch (error) {
      if (error instanceof LawError) fail(`layer ${index + 1}: ${error.message}`);
      throw error;
    }
    sizes.push(current);
  });
  return sizes;
}

/* ReceptiveField.interval: output unit u sees input pixels uS - P to uS - P + r - 1. */
function fieldInterval(field, position) {
  const u = toInt("position", position);
  const start = u * field.stride - field.padding;
  return { start, end: start + field.size - 1 };
}

/* cnnlab.atrous.check_rates: a non-empty list of ints >= 1, from text such as "6, 12, 18". */
function parseRates(name, raw) {
  const text = String(raw).trim();
  const items = text === "" ? [] : text.split(/[\s,]+/).filter((item) => item !== "");
  if (items.length === 0) fail(`${name} must be a non-empty sequence of positive ints, got []`);
  return items.map((item, index) => checkInt(`${name}[${index}]`, item, 1));
}

/* cnnlab.atrous.valid_taps_1d with its checks (and those of valid_weight_counts first). */
function validTaps1d(size, rate, kernelSize) {
  const n = toInt("size", size);
  const r = toInt("rate", rate);
  atLeast("size", n, 1);
  atLeast("rate", r, 1);
  const k = checkInt("kernel_size", kernelSize, 1);
  if (k % 2 === 0) fail(`kernel_size must be odd for 'same' padding, got ${k}`);
  if (n > 1e7) fail(`size ${n} is too large for the page`);
  const half = (k - 1) / 2;
  const taps = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let count = 0;
    for (let m = 0; m < k; m++) {
      const position = i + r * (m - half);
      if (position >= 0 && position < n) count++;
    }
    taps[i] = count;
  }
  return { n, r, k, taps };
}

/* valid_weight_counts / valid_weight_fractions: positions per count of valid weights. */
function validWeightHistogram(size, rate, kernelSize) {
  const line = validTaps1d(size, rate, kernelSize);
  const oneAxis = new Array(line.k + 1).fill(0);
  for (const t of line.taps) oneAxis[t]++;
  const positions = new Map(); // count c -> number of (i, j) with v(i) v(j) = c
  for (let a = 1; a <= line.k; a++) {
    for (let b = 1; b <= line.k; b++) {
      positions.set(a * b, (positions.get(a * b) || 0) + oneAxis[a] * oneAxis[b]);
    }
  }
  return { ...line, positions, total: line.n * line.n };
}

/* cnnlab.atrous.gridding_footprint, reduced to which pixels are reached: one axis. */
function griddingLine(rates, kernelSize) {
  const rs = parseRates("rates", rates);
  const k = checkInt("kernel_size", kernelSize, 1);
  const side = 1 + (k - 1) * rs.reduce((a, b) => a + b, 0);
  if (side > 1e6) fail(`the footprint of ${side} pixels a side is too large for the page`);
  let line = new Uint8Array(1).fill(1);
  for (const r of rs) {
    const next = new Uint8Array(line.length + (k - 1) * r);
    for (let x = 0; x < line.length; x++) {
      if (!line[x]) continue;
      for (let m = 0; m < k; m++) next[x + m * r] = 1;
    }
    line = next;
  }
  let reached = 0;
  for (const v of line) reached += v;
  return { rates: rs, k, side, line, reached };
}

/* cnnlab.atrous.hdc_max_distance: Wang et al.'s M_2. */
function hdcMaxDistance(rates) {
  const rs = parseRates("rates", rates);
  if (rs.length < 2) fail(`rates must hold at least two layers, got (${rs[0]},)`);
  let distance = rs[rs.length - 1];
  for (let index = rs.length - 2; index >= 1; index--) {
    const r = rs[index];
    distance = Math.max(distance - 2 * r, distance - 2 * (distance - r), r);
  }
  return distance;
}

/* cnnlab.atrous.hdc_condition: r_1 = 1 and M_2 <= K. */
function hdcCondition(rates, kernelSize) {
  const rs = parseRates("rates", rates);
  const k = checkInt("kernel_size", kernelSize, 3);
  if (k % 2 === 0) fail(`kernel_size must be odd, got ${k}`);
  if (rs[0] !== 1) return false;
  return rs.length === 1 || hdcMaxDistance(rates) <= k;
}

/* cnnlab.shapes._channels: C_in, C_out and groups, groups dividing both. */
function channels(inChannels, outChannels, groups) {
  const cIn = toInt("in_channels", inChannels);
  const cOut = toInt("out_channels", outChannels);
  const g = toInt("groups", groups);
  atLeast("in_channels", cIn, 1);
  atLeast("out_channels", cOut, 1);
  atLeast("groups", g, 1);
  if (cIn % g || cOut % g) {
    fail(`groups=${g} must divide in_channels=${cIn} and out_channels=${cOut}`);
  }
  return { cIn, cOut, g };
}

/* cnnlab.shapes.conv_params: C_out (C_in / g) k^2 (+ C_out), as a BigInt. */
function convParams(inChannels, outChannels, kernelSize, groups, bias) {
  const c = channels(inChannels, outChannels, groups);
  const k = checkInt("kernel_size", kernelSize, 1);
  const weights = BigInt(c.cOut) * BigInt(c.cIn / c.g) * BigInt(k) * BigInt(k);
  return { ...c, k, weights, total: weights + (bias ? BigInt(c.cOut) : 0n) };
}

/* cnnlab.shapes.conv_macs: C_out o^2 (C_in / g) k^2 for one image, as a BigInt. */
function convMacs(inChannels, outChannels, kernelSize, size, stride, padding, dilation, groups) {
  const c = channels(inChannels, outChannels, groups);
  const o = convOutputSize(size, kernelSize, stride, padding, dilation);
  const k = checkInt("kernel_size", kernelSize, 1);
  return BigInt(c.cOut) * BigInt(o) * BigInt(o) * BigInt(c.cIn / c.g) * BigInt(k) * BigInt(k);
}

const laws = {
  LawError,
  toInt,
  checkInt,
  effectiveKernelSize,
  convOutputSize,
  transposedOutputSize,
  receptiveFieldSteps,
  stackOutputSizes,
  fieldInterval,
  parseRates,
  validTaps1d,
  validWeightHistogram,
  griddingLine,
  hdcMaxDistance,
  hdcCondition,
  channels,
  convParams,
  convMacs,
};
