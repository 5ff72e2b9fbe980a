// Decode z in the browser while the Explore sliders move: the image changes on the key
// press, not after a server round trip. vae_core/webdecoder.py flattens the decoder into
// layers (Linear, LeakyReLU, reshape, ConvTranspose2d; PyTorch weight layouts), ui_common
// writes them to static/decoders/<hash>.bin, and this file fetches and runs them. The
// server still renders its own image for every step (the source of truth, the URL, the
// marker); when it arrives it shows the same pixels, and if it is stale
// (the slider moved on meanwhile) the client image for the current z is put back.
//
// The decoded image is <img alt="decode(z)" data-model=HASH data-z="z0,z1,..."> made by
// the server; the sliders are <input type=range aria-label="z[i]">.

// vae_core.webdecoder.decoder_blob: uint32 header length, JSON layers whose "w"/"b" are
// [offset, count] into the float32 data that follows
function parseBlob(buf) {
  const n = new DataView(buf).getUint32(0, true);
  const layers = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  const data = new Float32Array(buf, 4 + n);
  const view = (oc) => (oc ? data.subarray(oc[0], oc[0] + oc[1]) : null);
  return layers.map((L) => ({ ...L, w: view(L.w), b: view(L.b) }));
}

// z (array) -> {c, h, w, x: Float64Array of logits}
function runLayers(layers, z) {
  let x = Float64Array.from(z), shape = [x.length];
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
    }
  }
  return { h: shape[1], w: shape[2], x };
}

// uint8 pixels exactly as vae_core.images.decode makes them: round(255 * sigmoid(logit))
function decodePixels(hash, z) {
  const out = runLayers(window.__vaeDecoders[hash], z);
  const px = new Uint8Array(out.h * out.w);
  for (let i = 0; i < px.length; i++) px[i] = Math.round(255 / (1 + Math.exp(-out.x[i])));
  return { h: out.h, w: out.w, px };
}

function pngDataUrl(img) {
  const canvas = document.createElement("canvas");
  canvas.width = img.w; canvas.height = img.h;
  const ctx = canvas.getContext("2d"), data = ctx.createImageData(img.w, img.h);
  for (let i = 0; i < img.px.length; i++) {
    data.data[4 * i] = data.data[4 * i + 1] = data.data[4 * i + 2] = img.px[i];
    data.data[4 * i + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  return canvas.toDataURL("image/png");
}

const zKey = (z) => z.map((v) => Number(v).toFixed(3)).join(",");

// The z sliders with their dimension: [input, i] for every <input aria-label="z[i]">.
function zSliders() {
  const out = [];
  for (const input of document.querySelectorAll('input[type="range"][aria-label^="z["]')) {
    const m = /^z\[(\d+)\]$/.exec(input.getAttribute("aria-label"));
    if (m) out.push([input, +m[1]]);
  }
  return out;
}

// The z the sliders show now: the server's z with every slider's value laid over it.
function sliderZ(img) {
  const z = img.getAttribute("data-z").split(",").map(Number);
  for (const [input, i] of zSliders()) if (i < z.length) z[i] = Number(input.value);
  return z;
}

// A Streamlit slider can show a stale value: a key press that lands as the fragment's
// previous rerun finishes may be drawn back to an older value when that rerun's slider
// element arrives, although the server kept the newer one (about 1 press in 100 at a
// person's pace here, with or without this script). Once the page has settled (no
// rerun running, nothing changed for 400 ms) a slider that disagrees with the z the
// server drew is moved to it by pressing its arrow keys, once per server z: the
// server's z has every press the person made.
const healed = {};            // "z[i]" -> the server z it was last moved to
let settleTimer = null, pointerDown = false;  // never while a slider is being dragged

function alignSlidersWithServer() {
  const img = document.querySelector('img[alt="decode(z)"][data-z]');
  if (!img) return;
  const server = img.getAttribute("data-z"), zs = server.split(",").map(Number);
  for (const [input, i] of zSliders()) {
    const label = input.getAttribute("aria-label");
    if (i >= zs.length || healed[label] === server) continue;
    const n = Math.round((zs[i] - Number(input.value)) / (Number(input.step) || 0.05));
    if (n === 0) continue;
    healed[label] = server;
    window.__vaeRealigned = (window.__vaeRealigned || 0) + 1;
    const key = n > 0 ? "ArrowRight" : "ArrowLeft";
    for (let k = 0; k < Math.abs(n); k++) {
      input.dispatchEvent(new KeyboardEvent("keydown", { key, code: key, bubbles: true, cancelable: true }));
      input.dispatchEvent(new KeyboardEvent("keyup", { key, code: key, bubbles: true, cancelable: true }));
    }
  }
}

function whenSettled() {
  clearTimeout(settleTimer);
  settleTimer = setTimeout(() => {
    if (pointerDown || document.querySelector('[data-testid="stStatusWidget"]')) whenSettled();  // busy
    else alignSlidersWithServer();
  }, 400);
}

function refresh() {
  whenSettled();
  const img = document.querySelector('img[alt="decode(z)"][data-model]');
  if (!img || !window.__vaeDecoders[img.dataset.model]) return;
  const z = sliderZ(img), key = zKey(z);
  const shown = img.src === img.__clientSrc ? img.__clientKey : img.getAttribute("data-z");
  if (shown === key) return;
  const t0 = performance.now();
  img.__clientSrc = pngDataUrl(decodePixels(img.dataset.model, z));
  img.__clientKey = key;
  img.src = img.__clientSrc;
  window.__vaeLastClientDecode = { z: key, ms: performance.now() - t0 };
}

export default function ({ data }) {
  window.__vaeDecoders = window.__vaeDecoders || {};
  window.__vaeDecodePixels = decodePixels;  // for the browser test against PyTorch
  window.__vaeLoading = window.__vaeLoading || {};
  if (data && data.model && data.url && !window.__vaeDecoders[data.model] && !window.__vaeLoading[data.model]) {
    // fetched, not sent with the page: the weights never hold up the first picture
    window.__vaeLoading[data.model] = fetch(new URL(data.url, document.baseURI))
      .then((r) => { if (!r.ok) throw new Error(`${r.status} for ${data.url}`); return r.arrayBuffer(); })
      .then((buf) => { window.__vaeDecoders[data.model] = parseBlob(buf); refresh(); })
      .catch((e) => { console.warn("VAE explorer: browser decoding off:", e); });
  }
  if (!window.__vaePointer) {
    window.__vaePointer = true;
    document.addEventListener("pointerdown", () => { pointerDown = true; }, true);
    document.addEventListener("pointerup", () => { pointerDown = false; whenSettled(); }, true);
  }
  if (!window.__vaeObserver) {
    // Slider values change as attributes (aria-valuetext) on their range inputs; the
    // server's image arrives as a new src; the page swaps nodes on reruns. One cheap
    // check per batch of mutations covers all three.
    let queued = false;
    window.__vaeObserver = new MutationObserver(() => {
      if (queued) return;
      queued = true;
      queueMicrotask(() => { queued = false; refresh(); });
    });
    window.__vaeObserver.observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ["aria-valuetext", "src", "data-z"],
    });
  }
  refresh();
}
