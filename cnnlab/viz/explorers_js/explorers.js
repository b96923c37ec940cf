/* The explorers: read the controls, apply the laws (laws.js), write every quantity into its
 * data-role element (or the error that names the problem), and draw.
 *
 * Quantities are written at once on every input/change event; drawings are redrawn at the
 * next animation frame (at most once per frame), so a burst of changes costs one drawing.
 */
const SVG = "http://www.w3.org/2000/svg";

function control(scope, name) {
  return scope.querySelector(`[name="${name}"]`);
}

function readValue(scope, name) {
  const element = control(scope, name);
  if (!element) return undefined;
  return element.type === "checkbox" ? element.checked : element.value;
}

function readValues(scope, names) {
  const values = {};
  for (const name of names) values[name] = readValue(scope, name);
  return values;
}

/* Write `compute()` into every element of `role` in `scope`; an error's message instead. */
function show(scope, role, compute) {
  let result;
  let text;
  let error = null;
  try {
    result = compute();
    text = String(result);
  } catch (caught) {
    if (!(caught instanceof laws.LawError)) throw caught;
    error = caught;
    text = caught.message;
  }
  for (const element of scope.querySelectorAll(`[data-role="${role}"]`)) {
    if (element.textContent !== text) element.textContent = text;
    if (error) element.setAttribute("data-error", "");
    else element.removeAttribute("data-error");
  }
  return error ? { error } : { value: result };
}

/* Throw the error of an earlier result again (a quantity that needs it has no value). */
function need(...results) {
  for (const result of results) if (result.error) throw result.error;
  return results.map((result) => result.value);
}

function fraction(numerator, denominator) {
  return (numerator / denominator).toFixed(4);
}

function tuple(items) {
  return items.length === 1 ? `(${items[0]},)` : `(${items.join(", ")})`;
}

function scheduleDraw(root, draw) {
  const state = root.cnnlabExplorer;
  state.draw = draw;
  if (state.pending) return;
  state.pending = true;
  const run = () => {
    state.pending = false;
    state.draw();
  };
  if (typeof window.requestAnimationFrame === "function") window.requestAnimationFrame(run);
  else window.setTimeout(run, 0);
}

function drawing(root) {
  return root.querySelector('[data-part="drawing"]');
}

function message(root, text) {
  const target = drawing(root);
  target.textContent = "";
  const note = document.createElement("p");
  note.className = "cx-note";
  note.textContent = text;
  target.appendChild(note);
}

/* An SVG grid of `rows` x `cols` cells of `cell` px at (x, y); classOf(r, c) names each cell.
 * Every cell has data-at="r,c"; the cells the reader may pick (`pick`) also data-cell="r,c". */
function gridMarkup(x, y, rows, cols, cell, classOf, pick) {
  const parts = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const data = pick ? ` data-cell="${r},${c}" data-at="${r},${c}"` : ` data-at="${r},${c}"`;
      parts.push(
        `<rect x="${x + c * cell}" y="${y + r * cell}" width="${cell}" height="${cell}" ` +
          `class="${classOf(r, c)}"${data}/>`,
      );
    }
  }
  return parts.join("");
}

function cellSize(n, room) {
  return Math.max(3, Math.min(20, Math.floor(room / Math.max(n, 1))));
}

const MAX_GRID = 96;

/* ---------------------------------------------------------------- convolution geometry */

const convGeometry = {
  names: ["size", "kernel_size", "stride", "padding", "dilation", "output_padding", "transposed"],
  update(root) {
    const v = readValues(root, this.names);
    const span = show(root, "effective-kernel-size", () =>
      laws.effectiveKernelSize(v.kernel_size, v.dilation),
    );
    const out = show(root, "output-size", () =>
      v.transposed
        ? laws.transposedOutputSize(
            v.size,
            v.kernel_size,
            v.stride,
            v.padding,
            v.output_padding,
            v.dilation,
          )
        : laws.convOutputSize(v.size, v.kernel_size, v.stride, v.padding, v.dilation),
    );
    show(root, "formula", () => {
      const [o] = need(out, span);
      const [i, k, s, p, d] = ["size", "kernel_size", "stride", "padding", "dilation"].map((n) =>
        laws.toInt(n, v[n]),
      );
      if (v.transposed) {
        const op = laws.toInt("output_padding", v.output_padding);
        return `o = (${i} - 1)\u00b7${s} - 2\u00b7${p} + ${d}\u00b7(${k} - 1) + ${op} + 1 = ${o}`;
      }
      return `o = \u230a(${i} + 2\u00b7${p} - ${d}\u00b7(${k} - 1) - 1) / ${s}\u230b + 1 = ${o}`;
    });
    scheduleDraw(root, () => this.draw(root, v, out));
  },
  draw(root, v, out) {
    if (out.error) return message(root, "No drawing: the configuration has no output.");
    const o = out.value;
    const [i, k, s, p, d] = ["size", "kernel_size", "stride", "padding", "dilation"].map((n) =>
      laws.toInt(n, v[n]),
    );
    const state = root.cnnlabExplorer;
    const left = v.transposed ? i : i + 2 * p;
    if (left > MAX_GRID || o > MAX_GRID) {
      return message(root, `No drawing: grids larger than ${MAX_GRID} cells a side.`);
    }
    const selectable = v.transposed ? i : o; // the grid whose cell the reader picks
    const [sr, sc] = state.cell.map((x) => Math.min(x, selectable - 1));
    // Two grids side by side in the width the page gives (at most 260 px each).
    const room = Math.max(80, Math.min(260, ((drawing(root).clientWidth || 600) - 40) / 2));
    const a = cellSize(left, room);
    const b = cellSize(o, room);
    const gap = 40;
    const top = 22;
    const width = left * a + gap + o * b;
    const height = top + Math.max(left * a, o * b) + 4;
    const taps = new Set();
    for (let m = 0; m < k; m++) {
      for (let n = 0; n < k; n++) {
        if (v.transposed) taps.add(`${sr * s - p + m * d},${sc * s - p + n * d}`);
        else taps.add(`${sr * s + m * d},${sc * s + n * d}`);
      }
    }
    let inputCells;
    let outputCells;
    if (v.transposed) {
      inputCells = gridMarkup(
        0,
        top,
        i,
        i,
        a,
        (r, c) => (r === sr && c === sc ? "cx-sel" : "cx-in"),
        true,
      );
      outputCells = gridMarkup(left * a + gap, top, o, o, b, (r, c) =>
        taps.has(`${r},${c}`) ? "cx-tap" : "cx-out",
      );
    } else {
      inputCells = gridMarkup(0, top, left, left, a, (r, c) => {
        if (taps.has(`${r},${c}`)) return "cx-tap";
        return r < p || c < p || r >= p + i || c >= p + i ? "cx-pad" : "cx-in";
      });
      outputCells = gridMarkup(
        left * a + gap,
        top,
        o,
        o,
        b,
        (r, c) => (r === sr && c === sc ? "cx-sel" : "cx-out"),
        true,
      );
    }
    const inputLabel = v.transposed ? `input ${i}\u00d7${i}` : `input ${i}\u00d7${i}, padded`;
    const outputLabel = `output ${o}\u00d7${o}`;
    drawing(root).innerHTML =
      `<svg xmlns="${SVG}" width="${width}" height="${height}" role="img" ` +
      `aria-label="${inputLabel}; ${outputLabel}">` +
      `<text x="0" y="14" class="cx-label">${inputLabel}</text>` +
      `<text x="${left * a + gap}" y="14" class="cx-label">${outputLabel}</text>` +
      inputCells +
      outputCells +
      "</svg>";
  },
  setup(root) {
    root.cnnlabExplorer.cell = [0, 0];
    const pick = (event) => {
      const target = event.target.closest("[data-cell]");
      if (!target) return;
      const cell = target.getAttribute("data-cell").split(",").map(Number);
      const state = root.cnnlabExplorer;
      if (cell[0] === state.cell[0] && cell[1] === state.cell[1]) return;
      state.cell = cell;
      this.update(root);
    };
    drawing(root).addEventListener("mouseover", pick);
    drawing(root).addEventListener("click", pick);
  },
};

/* ---------------------------------------------------------------- receptive field */

const LAYER_NAMES = ["kernel_size", "stride", "padding", "dilation"];

function layerRows(root) {
  return Array.from(root.querySelectorAll('[data-part="layers"] [data-layer]'));
}

const receptiveFieldExplorer = {
  update(root) {
    const rows = layerRows(root);
    rows.forEach((row, index) => {
      row.setAttribute("data-layer", String(index));
      const number = row.querySelector('[data-part="layer-number"]');
      if (number) number.textContent = String(index + 1);
    });
    const layers = rows.map((row) => readValues(row, LAYER_NAMES));
    const size = readValue(root, "size");
    rows.forEach((row, index) => {
      const below = layers.slice(0, index + 1);
      const steps = show(row, "layer-receptive-field", () => {
        return laws.receptiveFieldSteps(below).field.size;
      });
      show(row, "layer-jump", () => need(steps) && laws.receptiveFieldSteps(below).field.stride);
      show(row, "layer-output-size", () => {
        const sizes = laws.stackOutputSizes(size, below);
        return sizes[sizes.length - 1];
      });
    });
    const summary = root.querySelector('[data-part="summary"]');
    let stack = null;
    const field = show(summary, "receptive-field", () => {
      stack = laws.receptiveFieldSteps(layers);
      return stack.field.size;
    });
    show(summary, "jump", () => need(field) && stack.field.stride);
    show(summary, "effective-padding", () => need(field) && stack.field.padding);
    let sizes = null;
    const out = show(summary, "output-size", () => {
      sizes = laws.stackOutputSizes(size, layers);
      return sizes[sizes.length - 1];
    });
    const position = readValue(root, "position");
    let interval = null;
    show(summary, "interval-start", () => {
      need(field);
      interval = laws.fieldInterval(stack.field, position);
      interval.unit = laws.toInt("position", position);
      return interval.start;
    });
    show(summary, "interval-end", () => need(field) && laws.fieldInterval(stack.field, position).end);
    show(summary, "interval", () => {
      need(field);
      const { start, end } = laws.fieldInterval(stack.field, position);
      return `[${start}, ${end}]`;
    });
    scheduleDraw(root, () => this.draw(root, layers, stack, sizes, out, interval));
  },
  draw(root, layers, stack, sizes, out, interval) {
    if (!stack || out.error) return message(root, "No drawing: the stack has no output.");
    const n = sizes.length - 1; // layers
    if (Math.max(...sizes) > 256) return message(root, "No drawing: layers wider than 256 units.");
    // Every layer's field, jump and padding below it (layer 0: the input pixels themselves).
    const fields = [{ size: 1, stride: 1, padding: 0 }, ...stack.steps];
    // The selected output unit, if it is one of the stack's output units.
    const u = interval && interval.unit >= 0 && interval.unit < sizes[n] ? interval.unit : null;
    // Where unit v of layer l sits, in input pixels: the centre of its field.
    const centre = (l, v) => v * fields[l].stride - fields[l].padding + (fields[l].size - 1) / 2;
    // The units of layer l that top unit u reads: the field of layers l+1..n, in layer-l units.
    const reads = [];
    for (let l = 0; l <= n; l++) {
      let r = 1;
      let j = 1;
      let p = 0;
      for (const w of stack.windows.slice(l)) {
        r += (w.span - 1) * j;
        p += w.p * j;
        j *= w.s;
      }
      reads.push(u === null ? { start: 0, end: -1 } : { start: u * j - p, end: u * j - p + r - 1 });
    }
    let lo = 0;
    let hi = sizes[0] - 1;
    for (let l = 0; l <= n; l++) {
      lo = Math.min(lo, centre(l, Math.min(0, reads[l].start)));
      hi = Math.max(hi, centre(l, Math.max(sizes[l] - 1, reads[l].end)));
    }
    const room = Math.max(160, Math.min(620, (drawing(root).clientWidth || 700) - 72));
    const scale = Math.max(2, Math.min(18, room / (hi - lo + 1)));
    const box = Math.max(2, Math.min(14, scale * 0.8));
    const rowHeight = 30;
    const labelWidth = 64;
    const height = (n + 1) * rowHeight + 8;
    const width = labelWidth + (hi - lo + 1) * scale + 4;
    const parts = [];
    const x = (l, v) => labelWidth + (centre(l, v) - lo) * scale + (scale - box) / 2;
    for (let l = 0; l <= n; l++) {
      const y = (n - l) * rowHeight + 8;
      parts.push(
        `<text x="0" y="${y + box}" class="cx-label">${l === 0 ? "input" : `layer ${l}`}</text>`,
      );
      const from = Math.min(0, reads[l].start);
      const to = Math.max(sizes[l] - 1, reads[l].end);
      for (let v = from; v <= to; v++) {
        const inside = v >= 0 && v < sizes[l];
        if (!inside && (v < reads[l].start || v > reads[l].end)) continue;
        const read = v >= reads[l].start && v <= reads[l].end;
        const kind = l === n && v === u ? "cx-sel" : read ? "cx-tap" : "cx-in";
        const data = l === n ? ` data-unit="${v}"` : "";
        parts.push(
          `<rect x="${x(l, v)}" y="${y}" width="${box}" height="${box}" ` +
            `class="${kind}${inside ? "" : " cx-padding"}" data-row="${l}" data-at="${v}"${data}/>`,
        );
      }
    }
    drawing(root).innerHTML =
      `<svg xmlns="${SVG}" width="${width}" height="${height}" role="img" ` +
      `aria-label="the layers of the stack, and the field of the selected output unit">${parts.join("")}</svg>`;
  },
  setup(root) {
    const pick = (event) => {
      const target = event.target.closest("[data-unit]");
      if (!target) return;
      const position = control(root, "position");
      const unit = target.getAttribute("data-unit");
      if (position.value === unit) return;
      position.value = unit;
      this.update(root);
    };
    drawing(root).addEventListener("mouseover", pick);
    drawing(root).addEventListener("click", pick);
    root.addEventListener("click", (event) => {
      const button = event.target.closest("[data-action]");
      if (!button || !root.contains(button)) return;
      const action = button.getAttribute("data-action");
      const body = root.querySelector('[data-part="layers"]');
      if (action === "add-layer") {
        const rows = layerRows(root);
        const template = root.querySelector('template[data-part="layer-template"]');
        const row = template.content.firstElementChild.cloneNode(true);
        if (rows.length) {
          for (const name of LAYER_NAMES) {
            control(row, name).value = control(rows[rows.length - 1], name).value;
          }
        }
        body.appendChild(row);
      } else if (action === "remove-layer") {
        const row = button.closest("[data-layer]");
        if (row) row.remove();
      } else {
        return;
      }
      this.update(root);
    });
  },
};

/* ---------------------------------------------------------------- atrous convolution */

const atrousExplorer = {
  names: ["rate", "size", "kernel_size", "rates"],
  update(root) {
    const v = readValues(root, this.names);
    let histogram = null;
    const map = show(root, "valid-count", () => {
      histogram = laws.validWeightHistogram(v.size, v.rate, v.kernel_size);
      return histogram.positions.get(histogram.k * histogram.k);
    });
    show(root, "valid-fraction", () => fraction(need(map)[0], histogram.total));
    show(root, "centre-only-fraction", () => {
      need(map);
      return fraction(histogram.positions.get(1), histogram.total);
    });
    const table = root.querySelector('[data-part="fractions"]');
    if (table) {
      table.textContent = "";
      if (histogram) {
        const counts = Array.from(histogram.positions.keys()).sort((a, b) => a - b);
        for (const c of counts) {
          const row = document.createElement("tr");
          const label = document.createElement("td");
          label.textContent = String(c);
          const cell = document.createElement("td");
          cell.setAttribute("data-role", `fraction-${c}`);
          cell.textContent = fraction(histogram.positions.get(c), histogram.total);
          row.append(label, cell);
          table.appendChild(row);
        }
      }
    }
    let line = null;
    const footprint = show(root, "footprint-size", () => {
      line = laws.griddingLine(v.rates, v.kernel_size);
      return line.side;
    });
    show(root, "footprint-reached", () => need(footprint) && line.reached * line.reached);
    show(root, "footprint-fraction", () => {
      need(footprint);
      return fraction(line.reached * line.reached, line.side * line.side);
    });
    show(root, "hdc", () => (laws.hdcCondition(v.rates, v.kernel_size) ? "yes" : "no"));
    show(root, "hdc-distance", () => laws.hdcMaxDistance(v.rates));
    scheduleDraw(root, () => this.draw(root, histogram, line));
  },
  draw(root, histogram, line) {
    const target = drawing(root);
    target.textContent = "";
    const panel = (title, side, paint) => {
      const figure = document.createElement("figure");
      const caption = document.createElement("figcaption");
      caption.textContent = title;
      if (side > 1024) {
        caption.textContent += ": too large to draw";
        figure.appendChild(caption);
        return target.appendChild(figure);
      }
      const canvas = document.createElement("canvas");
      canvas.width = side;
      canvas.height = side;
      const display = Math.max(side, Math.min(264, side * 8));
      canvas.style.width = `${display}px`;
      canvas.style.height = `${display}px`;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", title);
      const context = canvas.getContext("2d");
      const image = context.createImageData(side, side);
      paint(image.data);
      context.putImageData(image, 0, 0);
      figure.append(canvas, caption);
      target.appendChild(figure);
    };
    if (histogram) {
      const { n, k, taps } = histogram;
      panel(`valid weights at each position (darker: more of the ${k * k})`, n, (data) => {
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            const level = (taps[i] * taps[j]) / (k * k);
            const at = 4 * (i * n + j);
            data[at] = Math.round(255 - 200 * level);
            data[at + 1] = Math.round(255 - 140 * level);
            data[at + 2] = 255;
            data[at + 3] = 255;
          }
        }
      });
    }
    if (line) {
      const side = line.side;
      panel("gridding footprint: input pixels that reach the centre output", side, (data) => {
        for (let i = 0; i < side; i++) {
          for (let j = 0; j < side; j++) {
            const value = line.line[i] && line.line[j] ? 40 : 245;
            const at = 4 * (i * side + j);
            data[at] = value;
            data[at + 1] = value;
            data[at + 2] = value;
            data[at + 3] = 255;
          }
        }
      });
    }
  },
};

/* ---------------------------------------------------------------- multi-channel convolution */

const multichannelExplorer = {
  names: [
    "in_channels",
    "out_channels",
    "kernel_size",
    "groups",
    "size",
    "stride",
    "padding",
    "bias",
  ],
  update(root) {
    const v = readValues(root, this.names);
    let params = null;
    const weights = show(root, "weight-shape", () => {
      params = laws.convParams(v.in_channels, v.out_channels, v.kernel_size, v.groups, v.bias);
      return tuple([params.cOut, params.cIn / params.g, params.k, params.k]);
    });
    show(root, "parameters", () => need(weights) && params.total);
    show(root, "macs-per-value", () => {
      need(weights);
      return (params.cIn / params.g) * params.k * params.k;
    });
    const out = show(root, "output-size", () =>
      laws.convOutputSize(v.size, v.kernel_size, v.stride, v.padding, 1),
    );
    show(root, "output-shape", () => {
      const c = laws.channels(v.in_channels, v.out_channels, v.groups);
      const [o] = need(out);
      return tuple([c.cOut, o, o]);
    });
    show(root, "macs", () =>
      laws.convMacs(
        v.in_channels,
        v.out_channels,
        v.kernel_size,
        v.size,
        v.stride,
        v.padding,
        1,
        v.groups,
      ),
    );
    scheduleDraw(root, () => this.draw(root, params));
  },
  draw(root, params) {
    if (!params) return message(root, "No drawing: the channels or the kernel are invalid.");
    const { cIn, cOut, g, k } = params;
    if (Math.max(cIn, cOut) > 32) return message(root, "No drawing: more than 32 channels.");
    const box = 16;
    const step = 22;
    const top = 22;
    const height = top + Math.max(cIn, cOut) * step + 4;
    const right = 300;
    const width = right + 120;
    const perIn = cIn / g;
    const perOut = cOut / g;
    const parts = [
      `<text x="0" y="14" class="cx-label">${cIn} input channels</text>`,
      `<text x="${right}" y="14" class="cx-label">${cOut} filters of ${perIn}\u00d7${k}\u00d7${k}</text>`,
    ];
    for (let o = 0; o < cOut; o++) {
      const group = Math.floor(o / perOut);
      for (let c = group * perIn; c < (group + 1) * perIn; c++) {
        parts.push(
          `<line x1="${box}" y1="${top + c * step + box / 2}" x2="${right}" ` +
            `y2="${top + o * step + box / 2}" class="cx-link cx-group${group % 4}"/>`,
        );
      }
    }
    for (let c = 0; c < cIn; c++) {
      const group = Math.floor(c / perIn);
      parts.push(
        `<rect x="0" y="${top + c * step}" width="${box}" height="${box}" class="cx-group${group % 4}"/>`,
      );
    }
    for (let o = 0; o < cOut; o++) {
      const group = Math.floor(o / perOut);
      parts.push(
        `<rect x="${right}" y="${top + o * step}" width="${box}" height="${box}" class="cx-group${group % 4}"/>`,
      );
    }
    drawing(root).innerHTML =
      `<svg xmlns="${SVG}" width="${width}" height="${height}" role="img" ` +
      `aria-label="which input channels each filter reads">${parts.join("")}</svg>`;
  },
};

/* ---------------------------------------------------------------- wiring */

const EXPLORERS = {
  "conv-geometry": convGeometry,
  "receptive-field": receptiveFieldExplorer,
  atrous: atrousExplorer,
  multichannel: multichannelExplorer,
};

function init(root) {
  const explorer = EXPLORERS[root.getAttribute("data-explorer")];
  if (!explorer || root.cnnlabExplorer) return;
  root.cnnlabExplorer = { pending: false, draw: () => {} };
  if (explorer.setup) explorer.setup(root);
  // An input event and the change event that follows it carry the same values: compute once.
  const update = () => {
    const controls = root.querySelectorAll("input, select");
    const values = Array.from(controls, (e) => (e.type === "checkbox" ? e.checked : e.value));
    const signature = JSON.stringify(values);
    if (signature === root.cnnlabExplorer.signature) return;
    root.cnnlabExplorer.signature = signature;
    explorer.update(root);
  };
  root.addEventListener("input", update);
  root.addEventListener("change", update);
  for (const note of root.querySelectorAll('[data-part="static-note"]')) note.hidden = true;
  update();
  root.setAttribute("data-ready", "");
}

function initAll() {
  for (const root of document.querySelectorAll("[data-explorer]")) init(root);
}
