// The page: one websocket to this tab's server-side session; controls send settings, frames redraw.
"use strict";
window.CR = window.CR || {};
const $ = (id) => document.getElementById(id);

CR.config = {};
CR.task = "classification";
CR.nClasses = 2;
CR.points = null;
CR.frame = null;
CR.hoverNode = null;
CR.view = "train";
const ICONS = {
  play: '<svg viewBox="0 0 16 16" width="18" height="18"><path d="M4 2L14 8L4 14Z" fill="currentColor"/></svg>',
  pause: '<svg viewBox="0 0 16 16" width="18" height="18"><rect x="3" y="2" width="4" height="12" fill="currentColor"/><rect x="9" y="2" width="4" height="12" fill="currentColor"/></svg>',
};
const BUILTIN = ["circle", "xor", "gaussians", "spiral", "moons", "plane", "bumps"];
const LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const FEATURE_TEX = { x1: "x_1", x2: "x_2", "x1^2": "x_1^2", "x2^2": "x_2^2", "x1*x2": "x_1 x_2", "sin x1": "\\sin x_1", "sin x2": "\\sin x_2" };

CR.send = (msg) => { if (CR.ws && CR.ws.readyState === 1) CR.ws.send(JSON.stringify(msg)); };
// settings asked for and not yet answered: a second click before the server's frame builds on the
// first (the +/- buttons, the features) instead of on the settings the last frame showed
CR.pending = {};
CR.configsSent = 0;
CR.configure = (changes) => { Object.assign(CR.pending, changes); CR.configsSent++; CR.send({ type: "config", changes }); };
CR.wanted = () => ({ ...CR.config, ...CR.pending });

function showError(text) {
  const e = $("error");
  e.textContent = text || "";
  e.hidden = !text;
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  CR.ws = ws;
  ws.onopen = () => { $("conn").textContent = "connected"; $("conn").className = "conn ok"; };
  ws.onclose = () => { $("conn").textContent = "disconnected: reload to start a new session"; $("conn").className = "conn bad"; };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    const handler = { hello: onHello, data: onData, frame: onFrame, error: onError, backprop: CR.renderBackprop,
      cost: CR.renderCost, race: CR.renderRace }[msg.type];
    if (handler) handler(msg);
    // drawn: ask for the next frame once this one is on screen (the server keeps at most 2 in flight;
    // a hidden tab, whose animation frames pause, is sent none while it trains on)
    if (msg.type === "frame") requestAnimationFrame(() => CR.send({ type: "ack", seq: msg.seq }));
  };
}

function onHello(msg) {
  CR.session = msg.session;
  CR.limits = msg.limits;
  document.body.dataset.session = msg.session;
}

function onError(msg) {
  showError(msg.message);
  if (msg.for === "upload") $("csv-upload").value = "";
}

function onData(msg) {
  CR.points = msg;
  CR.task = msg.task;
  CR.nClasses = msg.classes.length;
  if (!BUILTIN.includes(msg.name)) CR.csvLoaded = true;
  $("dataset").querySelector('option[value="csv"]').disabled = !CR.csvLoaded;
  $("boundary-caption").textContent = msg.task === "regression" ? "prediction: orange −1 … blue +1" :
    msg.classes.length > 2 ? `classes: ${msg.classes.join(", ")}` : `P(y = 1 | x): orange ${msg.classes[0]} … blue ${msg.classes[1]}`;
}

const fmtLoss = (v) => (v === null || v === undefined ? "NaN" : v.toFixed(4));

function onFrame(f) {
  CR.frame = f;
  CR.config = f.config;
  if (f.configs >= CR.configsSent) CR.pending = {};  // the server has handled (or refused) every change sent
  document.body.dataset.ready = "1";
  if (f.thumbnails) CR.lastThumbs = f.thumbnails;
  $("step").textContent = f.step;
  $("epoch").textContent = f.epoch.toFixed(1);
  $("train-loss").textContent = fmtLoss(f.train_loss);
  $("test-loss").textContent = fmtLoss(f.test_loss);
  $("play").innerHTML = f.playing ? ICONS.pause : ICONS.play;
  $("play").classList.toggle("playing", f.playing);
  document.body.dataset.playing = f.playing;
  syncControls(CR.wanted());
  if (f.describe !== undefined) CR.describe = f.describe;  // while playing, sent a few times a second
  $("equations").textContent = CR.describe || "";
  CR.drawLossChart($("loss-chart"), f.history);
  const heat = f.hover && f.hover.rgba ? { size: f.heatmap.size, rgba: f.hover.rgba } : f.heatmap;
  CR.drawBoundary($("boundary"), heat, CR.points, $("show-test").checked);
  CR.layout = CR.networkLayout($("network"), f.features, f.hidden, f.weights[f.weights.length - 1].length);
  CR.drawNetwork($("network"), f, CR.layout);
  drawLayerButtons(f.hidden);
}

function syncControls(c) {
  const set = (id, v) => { const el = $(id); if (document.activeElement !== el) el.value = String(v); };
  set("dataset", c.dataset); set("optimizer", c.optimizer); set("learning-rate", c.learning_rate);
  set("momentum", c.momentum); set("batch-size", c.batch_size); set("schedule", c.schedule);
  set("activation", c.activation); set("regularization", c.regularization); set("reg-rate", c.reg_rate);
  set("dropout", c.dropout); set("steps-per-second", c.steps_per_second); set("noise", c.noise); set("train-ratio", c.train_ratio);
  $("noise-v").textContent = c.noise; $("train-ratio-v").textContent = `${Math.round(c.train_ratio * 100)}%`;
  document.querySelectorAll("#features input").forEach((el) => { el.checked = c.features.includes(el.value); });
  $("net-title").textContent = `${c.hidden.length} hidden layer${c.hidden.length === 1 ? "" : "s"}`;
}

function drawLayerButtons(hidden) {
  const box = $("layer-buttons"), key = hidden.join(",");
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.innerHTML = "";
  const L = CR.layout;
  hidden.forEach((n, l) => {
    const d = document.createElement("div");
    d.className = "layer-btn";
    d.style.left = `${L.box / 2 + (l + 1) * L.dx - 12}px`;
    d.innerHTML = `<button data-testid="add-neuron-${l}">+</button><button data-testid="remove-neuron-${l}">−</button><span>${n}</span>`;
    const [plus, minus] = d.querySelectorAll("button");
    const width = (d) => { const h = [...CR.wanted().hidden]; if (l < h.length) { h[l] = Math.max(1, Math.min(CR.limits.max_neurons, h[l] + d)); CR.configure({ hidden: h }); } };
    plus.onclick = () => width(1);
    minus.onclick = () => width(-1);
    box.appendChild(d);
  });
}

function neuronTex(id) {
  const f = CR.frame, feats = f.features.map((k) => FEATURE_TEX[k]);
  if (id.startsWith("f:")) return `\\phi_{${+id.slice(2) + 1}}(x) = ${feats[+id.slice(2)]}`;
  const out = id.startsWith("out"), k = id === "out" ? 0 : +id.split(":").pop();
  const [l, j] = out ? [f.hidden.length, k] : id.slice(2).split(":").map(Number);
  const W = f.weights[l][j], b = f.biases[l][j];
  const inputs = l === 0 ? feats : W.map((_, i) => `h^{(${l})}_{${i + 1}}`);
  const sum = W.map((w, i) => `${i && w >= 0 ? "+" : ""}${w.toFixed(2)}\\,${inputs[i]}`).join(" ") + `${b >= 0 ? "+" : ""}${b.toFixed(2)}`;
  if (out && id !== "out") return `P(y{=}${CR.points.classes[k]} \\mid x) = \\operatorname{softmax}(z)_{${k + 1}},\\quad z_{${k + 1}} = ${sum}`;
  if (out) {
    const head = CR.task === "regression" ? "\\hat y = z" : "P(y{=}1 \\mid x) = \\sigma(z)";
    return `${head},\\quad z = ${sum}`;
  }
  return `h^{(${l + 1})}_{${j + 1}} = ${CR.ACT_NAME[f.config.activation]}\\left(${sum}\\right)`;
}

function initNetworkHover() {
  const c = $("network");
  c.addEventListener("mousemove", (ev) => {
    if (!CR.layout || !CR.frame) return;
    const r = c.getBoundingClientRect();
    const hit = CR.hitNetwork(CR.layout, (ev.clientX - r.left) * (c.width / r.width), (ev.clientY - r.top) * (c.height / r.height));
    const node = hit.node ? hit.node.id : null;
    CR.canvasTip = !!(hit.node || hit.edge);
    if (hit.node) CR.showTip(neuronTex(node), ev.clientX, ev.clientY);
    else if (hit.edge) {
      const e = hit.edge;
      CR.showTip(`W^{(${e.l + 1})}_{${e.j + 1},${e.i + 1}} = ${e.w.toFixed(4)}\\quad \\text{(blue } > 0\\text{, orange } < 0\\text{; width} \\propto |w|)`, ev.clientX, ev.clientY);
    } else CR.showTip("", 0, 0);
    if (node !== CR.hoverNode) { CR.hoverNode = node; CR.send({ type: "hover", node }); }
  });
  c.addEventListener("mouseleave", () => { CR.canvasTip = false; CR.showTip("", 0, 0); CR.hoverNode = null; CR.send({ type: "hover", node: null }); });
}

function initControls() {
  LEARNING_RATES.forEach((v) => { const o = document.createElement("option"); o.value = o.textContent = String(v); $("learning-rate").appendChild(o); });
  const numeric = { optimizer: null, "learning-rate": "learning_rate", momentum: "momentum", "batch-size": "batch_size",
    schedule: null, activation: null, regularization: null, "reg-rate": "reg_rate", dropout: "dropout",
    "steps-per-second": "steps_per_second", dataset: null };
  for (const [id, key] of Object.entries(numeric)) {
    $(id).addEventListener("change", (ev) => {
      const k = key || id, v = key ? Number(ev.target.value) : ev.target.value;
      CR.configure({ [k]: v });
    });
  }
  $("noise").addEventListener("change", (ev) => CR.configure({ noise: Number(ev.target.value) }));
  $("train-ratio").addEventListener("change", (ev) => CR.configure({ train_ratio: Number(ev.target.value) }));
  $("play").onclick = () => CR.send({ type: CR.frame && CR.frame.playing ? "pause" : "play" });
  $("step-once").onclick = () => CR.send({ type: "step" });
  $("reset").onclick = () => CR.send({ type: "reset" });
  $("show-test").onchange = () => CR.frame && onFrame(CR.frame);
  $("add-layer").onclick = () => { const h = CR.wanted().hidden; if (h.length < CR.limits.max_layers) CR.configure({ hidden: [...h, 2] }); };
  $("remove-layer").onclick = () => { const h = CR.wanted().hidden; if (h.length) CR.configure({ hidden: h.slice(0, -1) }); };
  const feats = $("features");
  Object.entries(FEATURE_TEX).forEach(([k, tex]) => {
    const l = document.createElement("label");
    l.dataset.tex = `\\phi_k(x) = ${tex}`;
    const tid = k.replace("^2", "sq").replace(/[^a-z0-9]/g, "");  // x1^2 -> x1sq, x1*x2 -> x1x2, sin x1 -> sinx1
    l.innerHTML = `<input type="checkbox" value="${k}" data-testid="feature-${tid}"> ${k}`;
    l.querySelector("input").onchange = () => {
      const chosen = [...feats.querySelectorAll("input:checked")].map((i) => i.value);
      if (chosen.length) CR.configure({ features: chosen }); else onFrame(CR.frame);
    };
    feats.appendChild(l);
  });
  $("csv-upload").addEventListener("change", (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    if (file.size > CR.limits.max_upload_bytes) {
      showError(`${file.name}: the CSV has ${file.size.toLocaleString("en-US")} bytes; the playground accepts at most ${CR.limits.max_upload_bytes.toLocaleString("en-US")} (1 MiB)`);
      return;
    }
    file.text().then((text) => { showError(""); CR.send({ type: "upload", filename: file.name, text }); });
  });
  document.querySelectorAll("#controls select, #view-train select, #view-train input").forEach((el) =>
    el.addEventListener("change", () => { if (el.id !== "csv-upload") showError(""); }));
}

function showView(view) {
  CR.view = view;
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${view}`; });
  $("controls").classList.toggle("dim", view === "race");
  if (view === "backprop") CR.send({ type: "backprop", example: +$("bp-example").value || 0 });
  if (view === "cost") CR.send({ type: "cost" });
  if (view === "race") CR.raceRequest();
}

function initViews() {
  document.querySelectorAll(".tab").forEach((t) => { t.onclick = () => showView(t.dataset.view); });
  const bp = () => CR.send({ type: "backprop", example: Math.max(0, +$("bp-example").value || 0) });
  $("bp-example").addEventListener("change", bp);
  $("bp-refresh").onclick = bp;
  $("bp-prev").onclick = () => { CR.bp.cursor = Math.max(0, CR.bp.cursor - 1); CR.drawBackprop(); };
  $("bp-next").onclick = () => {
    if (!CR.bp.data) return;
    CR.bp.cursor = CR.bp.cursor >= CR.bp.data.trace.rows.length ? 0 : CR.bp.cursor + 1;
    CR.drawBackprop();
  };
  $("bp-all").onclick = () => { if (CR.bp.data) { CR.bp.cursor = CR.bp.data.trace.rows.length; CR.drawBackprop(); } };
  $("cost-refresh").onclick = () => CR.send({ type: "cost" });
}

CR.initTips();
initControls();
initNetworkHover();
initViews();
CR.initRace();
connect();
