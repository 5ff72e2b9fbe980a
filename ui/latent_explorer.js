// The latent explorer: scatter of latents, decoded image, z sliders and readout in one
// browser component (st.components.v2), used by the Explore and PCA pages.
//
// Why one component owns all of it: Streamlit sliders are redrawn by the server after
// every rerun, and a key press that lands as a rerun ends was undone (1-5 presses in 20
// were lost). Here only the browser moves the sliders; it decodes z itself (the decoder's
// weights are fetched once per model, vae_core/webdecoder.py), draws the image, the marker
// and the readout at once, and sends z to the server (coalesced, at most one message per
// SEND_MS) so the URL, the rest of the page and the favourites know it. The server never
// sends z back unless it changed z itself (reset, sample, a clicked point, a jump): its
// data carries a version `v` that only server-side changes bump.
//
// The scatter is a canvas, not Plotly: Plotly's WebGL scatter sent no click events in
// Chromium (clickmode 'event'), and a 2-D canvas draws the 70,000 points of MNIST in a few
// ms. Points arrive as one static binary file (x, y as float32, labels as uint8) per
// model and axes, fetched once, so a rerun sends only a few bytes.
//
// Data from the server (ui_common.latent_view):
//   model, decoder_url        the browser decoder (null: the server's image is used)
//   points_url, n_points      the scatter (null: no latent cache, no scatter)
//   classes, palette, ranges [[x0,x1],[y0,y1]], axis_titles, origin, ax, ay (D-vectors:
//   a point's plot position is ((z-origin)·ax, (z-origin)·ay))
//   sliders [{label, dim | u, scale, lo, hi, step}]: value = (z-origin)·u / scale
//   lattice_url, marker       a non-linear map (Map page, t-SNE and UMAP): the z of each
//                             node of a lattice over the map (vae_core.maps); a position
//                             decodes the bilinear blend of its 4 nodes' z. marker: the map
//                             position of the server's z (the map has no formula for it)
//   z, v (server's z version), ack ([cid, seq] the server applied last), zmax
//   image, image_z            the server's own decode of z (PNG data URI) and its z
//   size                      the largest side in CSS px of the plot area and the image
// Events to the server: move {z, seq, v, cid} and pick {i, v} (a clicked point's row).

const SEND_MS = 80;        // at most one z message per 80 ms while a slider or drag moves
const RESEND_MS = 700;     // a z the server has not acknowledged by then is sent again
const PICK_PX = 7;         // a click within 7 px of a point picks that point
const ML = 50, MB = 40;    // px left of and below the plot area, for ticks and titles

// ---------------------------------------------------------------- the decoder

// vae_core.webdecoder.decoder_blob: uint32 header length, JSON layers whose "w"/"b" are
// [offset, count] into the float32 data that follows
function parseBlob(buf) {
  const n = new DataView(buf).getUint32(0, true);
  const layers = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  const data = new Float32Array(buf, 4 + n);
  const view = (oc) => (oc ? data.subarray(oc[0], oc[0] + oc[1]) : null);
  return layers.map((L) => ({ ...L, w: view(L.w), b: view(L.b) }));
}

// z (array) -> {c, h, w, x: Float64Array of the output, channel-major, clip}: clip says the
// picture is the output clipped to [0, 1] (a channel-gain decoder), else its sigmoid
function runLayers(layers, z) {
  let x = Float64Array.from(z), shape = [x.length], clip = false;
  for (const L of layers) {
    if (L.op === "linear") {
      const y = new Float64Array(L.out);
      for (let o = 0; o < L.out; o++) {
        let s = L.b[o];
        const row = o * L.in;
        for (let i = 0; i < L.in; i++) s += L.w[row + i] * x[i];
        y[o] = s;
      }
      x = y; shape = [L.out];
    } else if (L.op === "lrelu") {
      for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] *= L.slope;
    } else if (L.op === "reshape") {
      shape = L.shape;
    } else if (L.op === "convT") {
      // out[co, iy*s - p + ky, ix*s - p + kx] += x[ci, iy, ix] * w[ci, co, ky, kx]
      const [, h, w] = shape, { cin, cout, k, stride: s, pad: p, outpad: op } = L;
      const ho = (h - 1) * s - 2 * p + k + op, wo = (w - 1) * s - 2 * p + k + op;
      const y = new Float64Array(cout * ho * wo);
      for (let co = 0; co < cout; co++) y.fill(L.b[co], co * ho * wo, (co + 1) * ho * wo);
      for (let ci = 0; ci < cin; ci++) {
        for (let iy = 0; iy < h; iy++) {
          for (let ix = 0; ix < w; ix++) {
            const v = x[(ci * h + iy) * w + ix];
            if (v === 0) continue;
            for (let ky = 0; ky < k; ky++) {
              const oy = iy * s - p + ky;
              if (oy < 0 || oy >= ho) continue;
              for (let kx = 0; kx < k; kx++) {
                const ox = ix * s - p + kx;
                if (ox < 0 || ox >= wo) continue;
                const wbase = (ci * cout * k + ky) * k + kx, obase = oy * wo + ox;
                for (let co = 0; co < cout; co++) y[co * ho * wo + obase] += v * L.w[wbase + co * k * k];
              }
            }
          }
        }
      }
      x = y; shape = [cout, ho, wo];
    } else if (L.op === "gain") {
      // channel c times 1 + (W z + b)[c], z the decoder's input (vae_core.models' channel-gain head)
      const hw = x.length / L.out;
      for (let c = 0; c < L.out; c++) {
        let g = 1 + L.b[c];
        for (let i = 0; i < L.in; i++) g += L.w[c * L.in + i] * z[i];
        for (let j = c * hw; j < (c + 1) * hw; j++) x[j] *= g;
      }
    } else if (L.op === "pixels") {
      clip = L.mean === "clip";
    }
  }
  return { c: shape[0], h: shape[1], w: shape[2], x, clip };
}

// uint8 pixels exactly as vae_core.images.decode makes them: round(255 * sigmoid(logit)),
// or round(255 * clip(output, 0, 1)) for a channel-gain decoder; channel-major (c = 1 grey, 3 colour)
function decodePixels(hash, z) {
  const out = runLayers(window.__vaeDecoders[hash], z);
  const px = new Uint8Array(out.c * out.h * out.w);
  if (out.clip) {
    for (let i = 0; i < px.length; i++) px[i] = Math.round(255 * Math.min(1, Math.max(0, out.x[i])));
  } else {
    for (let i = 0; i < px.length; i++) px[i] = Math.round(255 / (1 + Math.exp(-out.x[i])));
  }
  return { c: out.c, h: out.h, w: out.w, px };
}

function pixelsCanvas(img, scale = 1) {
  const canvas = document.createElement("canvas");
  canvas.width = img.w; canvas.height = img.h;
  const ctx = canvas.getContext("2d"), data = ctx.createImageData(img.w, img.h);
  const n = img.w * img.h, colour = img.c === 3;
  for (let i = 0; i < n; i++) {
    data.data[4 * i] = img.px[i];
    data.data[4 * i + 1] = colour ? img.px[n + i] : img.px[i];
    data.data[4 * i + 2] = colour ? img.px[2 * n + i] : img.px[i];
    data.data[4 * i + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  if (scale === 1) return canvas;
  const big = document.createElement("canvas");
  big.width = img.w * scale; big.height = img.h * scale;
  const bctx = big.getContext("2d");
  bctx.imageSmoothingEnabled = false;
  bctx.drawImage(canvas, 0, 0, big.width, big.height);
  return big;
}

function loadDecoder(hash, url) {
  window.__vaeDecoders = window.__vaeDecoders || {};
  window.__vaeLoading = window.__vaeLoading || {};
  if (!url || window.__vaeDecoders[hash] || window.__vaeLoading[hash]) return window.__vaeLoading[hash];
  // fetched after the first picture, not sent with the page: the weights never hold it up
  window.__vaeLoading[hash] = fetch(new URL(url, document.baseURI))
    .then((r) => { if (!r.ok) throw new Error(`${r.status} for ${url}`); return r.arrayBuffer(); })
    .then((buf) => { window.__vaeDecoders[hash] = parseBlob(buf); })
    .catch((e) => { console.warn("VAE explorer: browser decoding off:", e); });
  return window.__vaeLoading[hash];
}

// ---------------------------------------------------------------- the points

// A static binary file, fetched once per URL and page (a rerun sends only the URL):
// parse(ArrayBuffer) gives what every caller of that URL then shares.
function loadOnce(url, parse) {
  window.__vaeFiles = window.__vaeFiles || {};
  if (!window.__vaeFiles[url]) {
    window.__vaeFiles[url] = fetch(new URL(url, document.baseURI))
      .then((r) => { if (!r.ok) throw new Error(`${r.status} for ${url}`); return r.arrayBuffer(); })
      .then(parse);
  }
  return window.__vaeFiles[url];
}

// static/points/<name>.bin: uint32 N, float32 x[N], float32 y[N], uint8 labels[N]
function loadPoints(url) {
  return loadOnce(url, (buf) => {
    const n = new DataView(buf).getUint32(0, true);
    return { n, x: new Float32Array(buf, 4, n), y: new Float32Array(buf, 4 + 4 * n, n),
             labels: new Uint8Array(buf, 4 + 8 * n, n) };
  });
}

// vae_core.maps lattice file (ui_common._lattice_file): uint32 G, uint32 D, float64 x0 x1 y0 y1,
// then float32 z of node [iy][ix] (G*G*D)
function loadLattice(url) {
  return loadOnce(url, (buf) => {
    const v = new DataView(buf), g = v.getUint32(0, true), dim = v.getUint32(4, true);
    return { g, dim, box: new Float64Array(buf.slice(8, 40)), z: new Float32Array(buf, 40, g * g * dim) };
  });
}

// the z at map position (x, y): the bilinear blend of its lattice cell's four nodes
function latticeZ(L, x, y) {
  const { g, dim, box } = L, clamp = (t) => Math.min(Math.max(t, 0), 1);
  const fx = clamp((x - box[0]) / (box[1] - box[0])) * (g - 1), fy = clamp((y - box[2]) / (box[3] - box[2])) * (g - 1);
  const ix = Math.min(Math.floor(fx), g - 2), iy = Math.min(Math.floor(fy), g - 2), tx = fx - ix, ty = fy - iy;
  const z = new Float64Array(dim), at = (r, c) => (r * g + c) * dim;
  const w = [[at(iy, ix), (1 - tx) * (1 - ty)], [at(iy, ix + 1), tx * (1 - ty)],
             [at(iy + 1, ix), (1 - tx) * ty], [at(iy + 1, ix + 1), tx * ty]];
  for (const [o, wt] of w) for (let i = 0; i < dim; i++) z[i] += wt * L.z[o + i];
  return z;
}

function niceTicks(lo, hi, count = 6) {
  const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(Math.abs(t) < 1e-9 ? 0 : t);
  return { ticks: out, digits: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

const dot = (a, b, o) => { let s = 0; for (let i = 0; i < a.length; i++) s += (a[i] - (o ? o[i] : 0)) * b[i]; return s; };
const zKey = (z) => Array.from(z, (v) => Number(v).toFixed(3)).join(",");

// ---------------------------------------------------------------- one explorer

const CSS = `
.vle { font-size: 0.875rem; color: var(--st-text-color, inherit); }
.vle-legend { display: flex; flex-wrap: wrap; gap: 2px 12px; margin: 0 0 6px 0; min-height: 1.2em; }
.vle-chip { cursor: pointer; user-select: none; white-space: nowrap; }
.vle-chip i { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; vertical-align: -1px; }
.vle-chip.off { opacity: 0.35; text-decoration: line-through; }
.vle-row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.vle-plot { position: relative; flex: none; }
.vle-plot canvas { position: absolute; left: 0; top: 0; }
.vle-plot .vle-hit { cursor: crosshair; touch-action: none; }
.vle-tip { position: absolute; pointer-events: none; padding: 2px 6px; border-radius: 4px; font-size: 0.8rem;
  background: var(--st-background-color, #fff); border: 1px solid rgba(128,128,128,0.5); display: none; white-space: nowrap; z-index: 2; }
.vle-side { flex: 1 1 0; min-width: 200px; }
.vle-img { display: block; image-rendering: pixelated; border-radius: 4px; background: #000; }
.vle-cap { text-align: center; opacity: 0.6; margin: 2px 0 8px 0; }
.vle-sl { display: grid; grid-template-columns: minmax(3.5em, max-content) 1fr 5.5em; gap: 2px 10px; align-items: center; }
.vle-sl label { white-space: nowrap; font-variant-numeric: tabular-nums; }
.vle-sl input[type=range] { width: 100%; accent-color: var(--st-primary-color, #ff4b4b); }
.vle-sl input[type=number] { width: 100%; box-sizing: border-box; font: inherit; color: inherit; padding: 1px 4px;
  background: var(--st-secondary-background-color, transparent); border: 1px solid rgba(128,128,128,0.4); border-radius: 4px; }
.vle-out { margin-top: 10px; display: flex; gap: 8px; align-items: flex-start; flex-wrap: wrap; }
.vle-out code { flex: 1 1 100%; white-space: pre-wrap; word-break: break-word; font-size: 0.8rem; padding: 6px 8px;
  border-radius: 4px; background: var(--st-secondary-background-color, rgba(128,128,128,0.1)); user-select: all; }
.vle-out button { font: inherit; color: inherit; cursor: pointer; padding: 4px 12px; border-radius: 6px;
  border: 1px solid rgba(128,128,128,0.45); background: var(--st-background-color, transparent); }
.vle-note { opacity: 0.6; margin-top: 6px; }
`;

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

class Explorer {
  constructor(parent, setTriggerValue) {
    this.send = setTriggerValue;
    this.root = el("div", "vle", parent);
    this.root.__explorer = this;
    el("style", null, this.root).textContent = CSS;
    this.legend = el("div", "vle-legend", this.root);
    const row = el("div", "vle-row", this.root);
    this.plot = el("div", "vle-plot", row);
    this.axes = el("canvas", "vle-axes", this.plot);
    this.pts = el("canvas", "vle-points", this.plot);
    this.hit = el("canvas", "vle-hit", this.plot);
    this.tip = el("div", "vle-tip", this.plot);
    this.side = el("div", "vle-side", row);
    this.img = el("img", "vle-img", this.side);
    this.img.alt = "decode(z)";
    el("div", "vle-cap", this.side).textContent = "decode(z)";
    this.sl = el("div", "vle-sl", this.side);
    const out = el("div", "vle-out", this.side);
    this.code = el("code", null, out);
    this.copyBtn = el("button", null, out);
    this.copyBtn.textContent = "Copy z";
    this.pngBtn = el("button", null, out);
    this.pngBtn.textContent = "Download PNG";
    this.note = el("div", "vle-note", this.root);
    this.z = null; this.v = -1; this.seq = 0; this.ack = 0;
    this.cid = Math.random().toString(36).slice(2);  // this instance: the server acks [cid, seq]
    this.hidden = new Set();
    this.lastSend = 0; this.sendTimer = null; this.resendTimer = null;
    this.copyBtn.onclick = () => this.copy();
    this.pngBtn.onclick = () => this.download();
    this.bindPointer();
    new ResizeObserver(() => this.layout()).observe(this.root);
  }

  // ------------------------------------------------ data from the server
  update(data) {
    const first = this.z === null;
    this.data = data;
    if (Array.isArray(data.ack) && data.ack[0] === this.cid) this.ack = Math.max(this.ack, data.ack[1]);
    const sig = JSON.stringify([data.model, data.sliders.map((s) => [s.label, s.dim, s.lo, s.hi, s.step])]);
    if (sig !== this.sliderSig) { this.sliderSig = sig; this.buildSliders(); }
    if (first || data.v > this.v) {
      // a change the server made (reset, sample, clicked point, jump, link): adopt it
      const fromServer = !first;
      this.z = Float64Array.from(data.z);
      this.v = data.v;
      this.ack = this.seq;  // what was not sent yet is overruled by the server's z
      clearTimeout(this.sendTimer); this.sendTimer = null;
      this.zChanged(null, false);
      if (fromServer) this.reveal();
    }
    if (data.image_z) this.serverImage = { z: data.image_z, src: data.image };
    if (data.lattice_url && (!this.lattice || this.lattice.url !== data.lattice_url)) {
      const url = data.lattice_url;
      loadLattice(url).then((L) => { if (this.data.lattice_url === url) { this.lattice = { url, L }; this.root.dataset.lattice = "1"; } })
        .catch((e) => { this.note.textContent = `The map's way back to z could not be loaded (${e.message}).`; });
    }
    const pointsSig = JSON.stringify([data.points_url, data.ranges, data.axis_titles, data.classes]);
    if (pointsSig !== this.pointsSig) { this.pointsSig = pointsSig; this.points = null; this.loadScatter(); }
    this.note.textContent = data.caption || "";
    loadDecoder(data.model, data.decoder_url)?.then(() => this.draw());
    this.layout();
    this.draw();
    this.watchAck();
  }

  // ------------------------------------------------ geometry
  layout() {
    const d = this.data;
    if (!d) return;
    const width = this.root.clientWidth || 800, scatter = !!d.points_url;
    // the plot area and the image share one size S; both fit side by side, else stack
    let s = scatter ? Math.floor((width - ML - 24) / 2) : Math.floor(width);
    if (scatter && s < 220) s = Math.floor(width - ML);
    s = Math.max(120, Math.min(d.size, s));
    if (s === this.s && scatter === this.scatterOn) return;
    this.s = s; this.scatterOn = scatter;
    const dpr = window.devicePixelRatio || 1;
    this.plot.style.display = scatter ? "" : "none";
    this.legend.style.display = scatter ? "" : "none";
    this.plot.style.width = `${s + ML}px`; this.plot.style.height = `${s + MB}px`;
    this.axes.width = (s + ML) * dpr; this.axes.height = (s + MB) * dpr;
    this.axes.style.width = `${s + ML}px`; this.axes.style.height = `${s + MB}px`;
    for (const c of [this.pts, this.hit]) {
      c.width = s * dpr; c.height = s * dpr;
      c.style.width = c.style.height = `${s}px`; c.style.left = `${ML}px`;
    }
    this.img.style.width = this.img.style.height = `${s}px`;
    this.legend.style.marginLeft = `${ML}px`;
    this.drawScatter();
    this.drawMarker();
  }

  toPx(x, y) {
    const [[x0, x1], [y0, y1]] = this.data.ranges;
    return [(x - x0) / (x1 - x0) * this.s, (1 - (y - y0) / (y1 - y0)) * this.s];
  }

  fromPx(px, py) {
    const [[x0, x1], [y0, y1]] = this.data.ranges;
    return [x0 + px / this.s * (x1 - x0), y0 + (1 - py / this.s) * (y1 - y0)];
  }

  planeXY(z) {
    const d = this.data;
    if (d.lattice_url) {  // a non-linear map: where this z was put, else where the server places it
      if (this.mapXY && this.mapXY.z === zKey(z)) return this.mapXY.xy;
      return d.marker || null;
    }
    return [dot(z, d.ax, d.origin), d.ay ? dot(z, d.ay, d.origin) : 0];
  }

  colour(c) {
    const p = this.data.palette[c % this.data.palette.length];
    return p === "#000000" ? this.textColour() : p;  // black on a dark theme would vanish
  }

  textColour() {
    return getComputedStyle(this.root).getPropertyValue("--st-text-color").trim() || getComputedStyle(this.root).color;
  }

  // ------------------------------------------------ the scatter
  loadScatter() {
    const d = this.data;
    this.buildLegend();
    if (!d.points_url) return;
    const url = d.points_url;
    loadPoints(url).then((p) => {
      if (this.data.points_url !== url) return;
      this.points = p;
      this.drawScatter();
    }).catch((e) => { this.note.textContent = `The scatter could not be loaded (${e.message}).`; });
  }

  buildLegend() {
    this.legend.replaceChildren();
    (this.data.classes || []).forEach((name, c) => {
      const chip = el("span", "vle-chip" + (this.hidden.has(c) ? " off" : ""), this.legend);
      el("i", null, chip).style.background = this.colour(c);
      chip.append(name);
      chip.title = "show / hide this class";
      chip.onclick = () => {
        this.hidden.has(c) ? this.hidden.delete(c) : this.hidden.add(c);
        chip.classList.toggle("off");
        this.drawScatter();
      };
    });
  }

  drawScatter() {
    const d = this.data, s = this.s;
    if (!d || !s || !d.points_url) return;
    const dpr = window.devicePixelRatio || 1, fg = this.textColour();
    this.themeColour = fg;
    // axes: ticks, grid lines and titles around the plot area
    const a = this.axes.getContext("2d");
    a.setTransform(dpr, 0, 0, dpr, 0, 0);
    a.clearRect(0, 0, s + ML, s + MB);
    a.strokeStyle = fg; a.fillStyle = fg; a.font = "11px sans-serif";
    a.globalAlpha = 0.35; a.strokeRect(ML + 0.5, 0.5, s - 1, s - 1);
    const [[x0, x1], [y0, y1]] = d.ranges;
    const tx = niceTicks(x0, x1), ty = niceTicks(y0, y1);
    a.textAlign = "center"; a.textBaseline = "top";
    for (const t of tx.ticks) {
      const px = ML + this.toPx(t, y0)[0];
      a.globalAlpha = 0.12; a.beginPath(); a.moveTo(px, 0); a.lineTo(px, s); a.stroke();
      a.globalAlpha = 0.8; a.fillText(t.toFixed(tx.digits), px, s + 4);
    }
    a.textAlign = "right"; a.textBaseline = "middle";
    for (const t of ty.ticks) {
      const py = this.toPx(x0, t)[1];
      a.globalAlpha = 0.12; a.beginPath(); a.moveTo(ML, py); a.lineTo(ML + s, py); a.stroke();
      a.globalAlpha = 0.8; a.fillText(t.toFixed(ty.digits), ML - 5, py);
    }
    a.globalAlpha = 0.9; a.font = "12px sans-serif"; a.textAlign = "center"; a.textBaseline = "bottom";
    a.fillText(d.axis_titles[0], ML + s / 2, s + MB - 2);
    a.save(); a.translate(12, s / 2); a.rotate(-Math.PI / 2); a.textBaseline = "middle";
    a.fillText(d.axis_titles[1], 0, 0); a.restore();
    // the points, class by class, and a grid of 8 px cells for picking
    const c = this.pts.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, s, s);
    const p = this.points;
    if (!p) return;
    const t0 = performance.now();
    const cell = 8, cols = Math.ceil(s / cell) + 1, grid = new Map();
    const [sx, sy] = [s / (x1 - x0), s / (y1 - y0)];
    const px = new Float32Array(p.n), py = new Float32Array(p.n);
    for (let i = 0; i < p.n; i++) { px[i] = (p.x[i] - x0) * sx; py[i] = s - (p.y[i] - y0) * sy; }
    c.globalAlpha = 0.6;
    const nClasses = Math.max(d.classes.length, 1);
    for (let k = 0; k < 256; k++) {
      if (k >= nClasses && k > 0) break;
      if (this.hidden.has(k)) continue;
      c.fillStyle = this.colour(k);
      for (let i = 0; i < p.n; i++) {
        if (p.labels[i] !== k) continue;
        c.fillRect(px[i] - 1.2, py[i] - 1.2, 2.4, 2.4);
        const key = Math.floor(py[i] / cell) * cols + Math.floor(px[i] / cell);
        let bucket = grid.get(key);
        if (!bucket) grid.set(key, bucket = []);
        bucket.push(i);
      }
    }
    this.pick = { cell, cols, grid, px, py };
    this.root.dataset.drawMs = (performance.now() - t0).toFixed(1);
    this.root.dataset.points = String(p.n);
  }

  nearest(mx, my) {
    const g = this.pick;
    if (!g) return -1;
    let best = -1, bd = PICK_PX * PICK_PX;
    const cx = Math.floor(mx / g.cell), cy = Math.floor(my / g.cell);
    for (let yy = cy - 1; yy <= cy + 1; yy++) {
      for (let xx = cx - 1; xx <= cx + 1; xx++) {
        for (const i of g.grid.get(yy * g.cols + xx) || []) {
          const dd = (g.px[i] - mx) ** 2 + (g.py[i] - my) ** 2;
          if (dd < bd) { bd = dd; best = i; }
        }
      }
    }
    return best;
  }

  drawMarker() {
    const d = this.data, s = this.s;
    if (!d || !s || !d.points_url || !this.z) return;
    const dpr = window.devicePixelRatio || 1, c = this.hit.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, s, s);
    const at = this.planeXY(this.z);
    if (!at) { delete this.root.dataset.marker; return; }
    const [x, y] = at;
    let [mx, my] = this.toPx(x, y);
    mx = Math.min(Math.max(mx, 0), s); my = Math.min(Math.max(my, 0), s);
    c.lineCap = "round";
    for (const [colour, w] of [["#ffffff", 6], ["#e8000b", 3]]) {
      c.strokeStyle = colour; c.lineWidth = w; c.beginPath();
      c.moveTo(mx - 8, my - 8); c.lineTo(mx + 8, my + 8); c.moveTo(mx + 8, my - 8); c.lineTo(mx - 8, my + 8);
      c.stroke();
    }
    this.root.dataset.marker = `${mx.toFixed(1)},${my.toFixed(1)}`;
    this.root.dataset.markerXy = `${x.toFixed(4)},${y.toFixed(4)}`;
  }

  // ------------------------------------------------ pointer: pick a point, or drag z
  bindPointer() {
    let down = null;
    const pos = (e) => { const r = this.hit.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
    this.hit.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      const [mx, my] = pos(e);
      down = { mx, my, i: this.nearest(mx, my), dragging: false };
      this.hit.setPointerCapture(e.pointerId);
    });
    this.hit.addEventListener("pointermove", (e) => {
      const [mx, my] = pos(e);
      if (down) {
        if (!down.dragging && Math.hypot(mx - down.mx, my - down.my) > 4) down.dragging = true;
        if (down.dragging) this.moveTo(mx, my);
        return;
      }
      this.hover(mx, my);
    });
    const up = (e) => {
      if (!down) return;
      const [mx, my] = pos(e), d = down;
      down = null;
      if (d.dragging) return;
      if (d.i >= 0) this.sendPick(d.i);   // a point: its whole posterior mean (the server has it)
      else this.moveTo(mx, my);           // empty space: the plotted coordinates go there
    };
    this.hit.addEventListener("pointerup", up);
    this.hit.addEventListener("pointercancel", () => { down = null; });
    this.hit.addEventListener("pointerleave", () => { this.tip.style.display = "none"; });
  }

  hover(mx, my) {
    const i = this.nearest(mx, my), p = this.points;
    if (i < 0 || !p) { this.tip.style.display = "none"; return; }
    const name = this.data.classes[p.labels[i]] ?? p.labels[i];
    this.tip.textContent = `#${i} ${name} (${p.x[i].toFixed(2)}, ${p.y[i].toFixed(2)}) · click to jump`;
    this.tip.style.display = "block";
    this.tip.style.left = `${ML + Math.min(mx + 12, this.s - 150)}px`;
    this.tip.style.top = `${Math.max(my - 28, 0)}px`;
  }

  moveTo(mx, my) {
    const s = this.s;
    const [x, y] = this.fromPx(Math.min(Math.max(mx, 0), s), Math.min(Math.max(my, 0), s));
    const d = this.data;
    if (d.lattice_url) {
      if (!this.lattice || this.lattice.url !== d.lattice_url || this.lattice.L.dim !== this.z.length) return;
      const zmax = d.zmax, z = latticeZ(this.lattice.L, x, y).map((v) => Math.min(zmax, Math.max(-zmax, v)));
      this.z = z;
      this.mapXY = { z: zKey(z), xy: [x, y] };
      this.zChanged(null, true);
      return;
    }
    const [cx, cy] = this.planeXY(this.z);
    for (let i = 0; i < this.z.length; i++) {
      this.z[i] += (x - cx) * d.ax[i] + (d.ay ? (y - cy) * d.ay[i] : 0);
    }
    this.zChanged(null, true);
  }

  sendPick(i) {
    this.send("pick", { i, v: this.v });
  }

  // ------------------------------------------------ sliders
  sliderValue(sd, z) {
    return sd.dim !== undefined && sd.dim !== null ? z[sd.dim] - (this.data.origin[sd.dim] || 0)
      : dot(z, sd.u, this.data.origin) / sd.scale;
  }

  buildSliders() {
    this.sl.replaceChildren();
    this.inputs = this.data.sliders.map((sd, k) => {
      const label = el("label", null, this.sl);
      label.textContent = sd.label;
      const range = el("input", null, this.sl);
      Object.assign(range, { type: "range", min: sd.lo, max: sd.hi, step: sd.step });
      range.setAttribute("aria-label", sd.label);
      const num = el("input", null, this.sl);
      Object.assign(num, { type: "number", step: sd.step / 5 });
      num.setAttribute("aria-label", `${sd.label} value`);
      label.title = sd.help || "";
      range.addEventListener("input", () => this.setSlider(k, Number(range.value)));
      num.addEventListener("change", () => {
        const v = Number(num.value);
        if (Number.isFinite(v)) this.setSlider(k, v);
        else this.showSliders();
      });
      return { range, num, sd };
    });
  }

  setSlider(k, a) {
    const sd = this.data.sliders[k], cur = this.sliderValue(sd, this.z);
    if (sd.dim !== undefined && sd.dim !== null) this.z[sd.dim] += a - cur;
    else for (let i = 0; i < this.z.length; i++) this.z[i] += (a - cur) * sd.scale * sd.u[i];
    this.zChanged(k, true);
  }

  showSliders(except) {
    (this.inputs || []).forEach(({ range, num, sd }, k) => {
      const a = this.sliderValue(sd, this.z);
      if (k !== except) range.value = String(a);   // never moved under the user's hand
      if (document.activeElement !== num) num.value = a.toFixed(3);
    });
  }

  // ------------------------------------------------ z changed: everything follows
  zChanged(except, fromUser) {
    const zmax = this.data.zmax;
    for (let i = 0; i < this.z.length; i++) this.z[i] = Math.min(zmax, Math.max(-zmax, this.z[i]));
    this.showSliders(except);
    this.code.textContent = "z = [" + Array.from(this.z, (v) => v.toFixed(3)).join(", ") + "]";
    this.root.dataset.z = zKey(this.z);
    this.drawMarker();
    this.draw();  // at once, not on the next frame: a key press shows its picture a frame sooner (~7 ms a decode)
    if (fromUser) { this.seq += 1; this.scheduleSend(); }
  }

  // the picture for the current z: decoded here, else the server's when it is for this z
  draw() {
    if (!this.z || !this.data) return;
    const key = zKey(this.z), d = this.data;
    if (this.img.dataset.z === key && this.img.dataset.model === d.model) return;
    const dec = window.__vaeDecoders && window.__vaeDecoders[d.model];
    if (dec) {
      this.pixels = decodePixels(d.model, Array.from(this.z));
      this.img.src = pixelsCanvas(this.pixels).toDataURL("image/png");
    } else if (this.serverImage && this.serverImage.z !== this.img.dataset.z) {
      // no decoder here: the server's newest picture, even while z moves on (during a drag
      // it is a step behind); data-z says which z it shows
      this.pixels = null;
      this.img.src = this.serverImage.src;
      this.img.dataset.z = this.serverImage.z;
      this.img.dataset.model = d.model;
      return;
    } else {
      return;
    }
    this.img.dataset.z = key;
    this.img.dataset.model = d.model;
  }

  // ------------------------------------------------ to the server
  scheduleSend() {
    const wait = this.lastSend + SEND_MS - performance.now();
    if (wait <= 0) this.flush();
    else if (!this.sendTimer) this.sendTimer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    clearTimeout(this.sendTimer);
    this.sendTimer = null;
    this.lastSend = performance.now();
    this.send("move", { z: Array.from(this.z), seq: this.seq, v: this.v, cid: this.cid });
    this.watchAck();
  }

  // A message can be lost when Streamlit coalesces reruns; until the server says it has
  // the latest z (data.ack), it is sent again after a quiet spell.
  watchAck() {
    clearTimeout(this.resendTimer);
    if (this.ack >= this.seq) return;
    this.resendTimer = setTimeout(() => { if (this.ack < this.seq && !this.sendTimer) this.flush(); }, RESEND_MS);
  }

  reveal() {
    const r = this.img.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) this.img.scrollIntoView({ block: "center", behavior: "instant" });
  }

  copy() {
    const text = this.code.textContent;
    const done = () => { this.copyBtn.textContent = "Copied"; setTimeout(() => { this.copyBtn.textContent = "Copy z"; }, 1200); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, () => {});
    else {
      const range = document.createRange();
      range.selectNodeContents(this.code);
      getSelection().removeAllRanges(); getSelection().addRange(range);
      document.execCommand("copy");
      done();
    }
  }

  download() {
    const a = document.createElement("a");
    a.download = "decoded.png";
    if (this.pixels) {
      a.href = pixelsCanvas(this.pixels, 10).toDataURL("image/png");   // 280x280, crisp pixels
    } else {
      const c = document.createElement("canvas"), n = this.img.naturalWidth || 28;
      c.width = c.height = n * 10;
      const ctx = c.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.img, 0, 0, c.width, c.height);
      a.href = c.toDataURL("image/png");
    }
    a.click();
  }
}

export default function ({ data, parentElement, setTriggerValue }) {
  window.__vaeDecodePixels = decodePixels;  // for the browser test against PyTorch
  if (!data) return;
  let root = parentElement.querySelector(":scope > .vle");
  const ex = root ? root.__explorer : new Explorer(parentElement, setTriggerValue);
  ex.send = setTriggerValue;
  ex.update(data);
  const theme = ex.textColour();
  if (ex.themeColour && theme !== ex.themeColour) { ex.buildLegend(); ex.drawScatter(); ex.drawMarker(); }
}
