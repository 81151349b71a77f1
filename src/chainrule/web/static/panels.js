// The side views: backprop ledger and graph, the street-fighting cost table, the optimizer race.
"use strict";
window.CR = window.CR || {};

// a value as the ledger prints it: the number for one element, the entries up to 4, else shape and norm
CR.shapeOf = (a) => (Array.isArray(a) ? [a.length, ...CR.shapeOf(a[0])] : []);
CR.fmtArray = (a) => {
  if (a === null || a === undefined) return "–";
  const flat = [a].flat(Infinity), shape = CR.shapeOf(a);
  const g = (v) => (v === null ? "NaN" : Number(v).toPrecision(4));
  if (flat.length === 1) return g(flat[0]);
  if (flat.length <= 4) return `[${flat.map(g).join(", ")}]`;
  const norm = Math.sqrt(flat.reduce((s, v) => s + v * v, 0));
  return `(${shape.join(", ")}) |.|=${g(norm)}`;
};

CR.bp = { data: null, cursor: 0 };

CR.renderBackprop = (msg) => {
  const prev = CR.bp.data, same = prev && prev.example === msg.example && prev.step === msg.step;
  CR.bp.data = msg;
  if (!same) CR.bp.cursor = msg.trace.rows.length;  // a new ledger opens fully stepped; a repeat keeps the place
  const tbody = document.querySelector("#bp-table tbody");
  tbody.innerHTML = "";
  msg.trace.rows.forEach((r) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = "bp-row";
    tr.setAttribute("data-testid", "bp-row");
    const cells = [r.step, `${r.output} = ${r.op}`, `${r.input} (arg ${r.arg})`, CR.fmtArray(r.local),
      CR.fmtArray(r.incoming), CR.fmtArray(r.contribution), CR.fmtArray(r.accumulated)];
    const ids = ["bp-step", "bp-node", "bp-input", "bp-local", "bp-incoming", "bp-contribution", "bp-accumulated"];
    cells.forEach((c, k) => {
      const td = document.createElement("td");
      td.textContent = c;
      td.setAttribute("data-testid", ids[k]);
      tr.appendChild(td);
    });
    tr.addEventListener("click", () => { CR.bp.cursor = r.step; CR.drawBackprop(); });
    tbody.appendChild(tr);
  });
  document.getElementById("bp-example").max = msg.n_examples - 1;
  CR.drawBackprop();
};

CR.drawBackprop = () => {
  const msg = CR.bp.data;
  if (!msg) return;
  const rows = msg.trace.rows, cur = CR.bp.cursor;
  document.querySelectorAll("#bp-table tbody tr").forEach((tr, k) => {
    tr.classList.toggle("pending", k >= cur);
    tr.classList.toggle("current", k === cur - 1);
  });
  const x = msg.x.map((v) => v.toFixed(3)).join(", ");
  document.getElementById("bp-status").textContent =
    `example ${msg.example}: x = (${x}), y = ${msg.y}, L = ${msg.loss.toPrecision(4)} · step ${cur} of ${rows.length} (training step ${msg.step})`;
  // gradient known so far for each node (by forward index): the seed, then each row's accumulation
  const grad = {}, nodes = msg.graph.nodes;
  if (cur > 0) grad[msg.graph.root] = msg.trace.seed;
  rows.slice(0, cur).forEach((r) => { grad[r.input_index] = r.accumulated; });
  const depth = {};
  nodes.forEach((n) => { depth[n.index] = n.inputs.length ? 1 + Math.max(...n.inputs.map((i) => depth[i] ?? 0)) : 0; });
  nodes.forEach((n) => { if (n.kind !== "op" && !n.inputs.length) depth[n.index] = 0; });
  // leaves sit one column before the op that uses them
  nodes.forEach((n) => n.inputs.forEach((i) => {
    const m = nodes.find((q) => q.index === i);
    if (m && m.kind !== "op") depth[i] = Math.max(depth[i], depth[n.index] - 1);
  }));
  const maxD = Math.max(...Object.values(depth)), perCol = {};
  const svg = document.getElementById("bp-graph"), W = 1180, H = 330;
  const bw = 172, bh = 50, pos = {};
  nodes.forEach((n) => {
    const d = depth[n.index], k = (perCol[d] = (perCol[d] || 0) + 1) - 1;
    pos[n.index] = { x: 6 + d * (bw + 26), y: 8 + k * (bh + 10) };
  });
  svg.setAttribute("width", Math.max(W, 12 + (maxD + 1) * (bw + 26)));
  const cr = rows[cur - 1];
  CR.renderChainRule(cr);
  let html = "";
  for (const n of nodes) for (const i of n.inputs) {
    const a = pos[i], b = pos[n.index], on = cr && cr.input_index === i && cr.output_index === n.index;
    html += `<line x1="${a.x + bw}" y1="${a.y + bh / 2}" x2="${b.x}" y2="${b.y + bh / 2}" class="${on ? "edge on" : "edge"}"/>`;
  }
  // a node's lines fit its box (27 characters of 10 px monospace); the full text is its hover title
  const short = (s) => (s.length > 21 ? s.slice(0, 20) + "…" : s);
  const valueLine = (n) => (n.kind === "const" ? "constant" : n.value.includes("overwritten") ? "fused into the activation" :
    "value " + short(n.value));
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  for (const n of nodes) {
    const p = pos[n.index], g = grad[n.index];
    const cls = `node ${n.kind}${cr && (cr.input_index === n.index || cr.output_index === n.index) ? " on" : ""}`;
    html += `<g class="${cls}" data-testid="bp-node"><rect x="${p.x}" y="${p.y}" width="${bw}" height="${bh}" rx="5"/>` +
      `<text x="${p.x + 4}" y="${p.y + 13}">${esc(n.label)}${n.op && !n.label.startsWith(n.op) ? " = " + esc(n.op) : ""}</text>` +
      `<text x="${p.x + 4}" y="${p.y + 28}">${esc(valueLine(n))}</text>` +
      `<text x="${p.x + 4}" y="${p.y + 43}" class="grad">${g !== undefined ? "grad " + esc(short(CR.fmtArray(g))) : ""}</text>` +
      `<title>${esc(n.label)}: value ${esc(n.value)}${g !== undefined ? "; dL/d(node) " + esc(CR.fmtArray(g)) : ""}</title></g>`;
  }
  svg.innerHTML = html;
  if (cr) {  // keep the current edge in view: backward starts at the right end
    const box = svg.parentElement, mid = (pos[cr.input_index].x + pos[cr.output_index].x + bw) / 2;
    box.scrollLeft = Math.max(0, mid - box.clientWidth / 2);
  }
  svg.setAttribute("height", Math.max(H, 16 + Math.max(...Object.values(perCol)) * (bh + 10)));
};

// the current ledger row as the lecture writes it, with its numbers (arrays by shape and norm)
CR.renderChainRule = (r) => {
  const el = document.getElementById("bp-current");
  if (!r) { el.textContent = "step 0: nothing visited yet; next ▶ applies the seed dL/dL = 1"; return; }
  const t = (s) => String(s).replace(/[#_{}\\^$&%]/g, (c) => "\\" + (c === "\\" ? "backslash " : c));
  const v = (a) => `\\texttt{${t(CR.fmtArray(a))}}`;
  CR.renderTex(el, `\\text{step ${r.step}: } \\frac{\\partial L}{\\partial\\, \\texttt{${t(r.input)}}} \\mathrel{+}= ` +
    `\\underbrace{${v(r.incoming)}}_{\\partial L / \\partial\\, \\texttt{${t(r.output)}}} \\cdot ` +
    `\\underbrace{${r.local === null ? "\\text{(too big to show)}" : v(r.local)}}_{\\partial\\, \\text{${t(r.op)}} / \\partial\\, \\text{arg ${r.arg}}} = ${v(r.contribution)}`, true);
};

CR.fmtCost = (v, unit) => {
  if (v === null || v === undefined) return "–";
  if (unit !== "bytes") return Number(v).toLocaleString("en-US");
  const u = ["B", "KiB", "MiB", "GiB"];
  let k = 0;
  while (Math.abs(v) >= 1024 && k < u.length - 1) { v /= 1024; k++; }
  return k ? `${v.toFixed(2)} ${u[k]}` : `${v} B`;
};

CR.renderCost = (msg) => {
  document.getElementById("cost-head").textContent =
    `network ${msg.sizes.join(" → ")}, batch B = ${msg.batch_size}, optimizer ${msg.optimizer}, ${msg.parameters} parameters` +
    (msg.measured ? "" : " (Newton: estimated only; an exact Hessian is P × P)");
  const tbody = document.querySelector("#cost-table tbody");
  tbody.innerHTML = "";
  for (const r of msg.rows) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "cost-row");
    [r.quantity, CR.fmtCost(r.lecture, r.unit), CR.fmtCost(r.estimate, r.unit), CR.fmtCost(r.measured, r.unit), r.why]
      .forEach((c, k) => {
        const td = document.createElement("td");
        td.textContent = c;
        if (k === 0 && r.tex) td.dataset.tex = r.tex;
        if (k === 4) td.className = "why";
        tr.appendChild(td);
      });
    tbody.appendChild(tr);
  }
  document.getElementById("cost-lecture").textContent = msg.lecture_text;
};

CR.race = { chosen: ["sgd", "momentum", "adam"] };

CR.raceRequest = () => {
  const lr = Math.pow(10, +document.getElementById("race-lr").value);
  document.getElementById("race-lr-v").textContent = lr.toPrecision(3);
  const mu = +document.getElementById("race-momentum").value;
  document.getElementById("race-momentum-v").textContent = mu.toFixed(2);
  const chosen = [...document.querySelectorAll("#race-optimizers input:checked")].map((c) => c.value);
  if (!chosen.length) return;
  CR.send({ type: "race", function: document.getElementById("race-function").value, optimizers: chosen,
    learning_rate: lr, momentum: mu, steps: Math.max(1, Math.min(500, +document.getElementById("race-steps").value || 100)),
    lr_all: document.getElementById("race-lr-all").checked });
};

CR.initRace = () => {
  const box = document.getElementById("race-optimizers");
  ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "newton"].forEach((o) => {
    const l = document.createElement("label");
    l.dataset.tex = CR.OPT_TEX[o];
    l.innerHTML = `<input type="checkbox" value="${o}" data-testid="race-opt-${o}" ${CR.race.chosen.includes(o) ? "checked" : ""}> ${o}`;
    box.appendChild(l);
  });
  let timer = null;
  const later = () => { clearTimeout(timer); timer = setTimeout(CR.raceRequest, 120); };
  document.querySelectorAll("#view-race input, #view-race select").forEach((el) => el.addEventListener("input", later));
};

CR.renderRace = (msg) => {
  CR.lastRace = msg;
  CR.drawRace(document.getElementById("race-canvas"), msg);
  const tbody = document.querySelector("#race-table tbody");
  tbody.innerHTML = "";
  msg.paths.forEach((p, k) => {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "race-row");
    const s = Object.entries(p.settings).map(([a, b]) => `${a}=${typeof b === "number" ? +b.toPrecision(3) : b}`).join(", ") || "defaults";
    [p.name, s, p.steps_to_tol === null ? "–" : p.steps_to_tol, p.final_loss === null ? "diverged" : p.final_loss.toPrecision(3) + (p.diverged ? " (diverged)" : "")]
      .forEach((c, j) => {
        const td = document.createElement("td");
        td.textContent = c;
        if (j === 0) { td.style.color = CR.PALETTE[k % CR.PALETTE.length]; td.dataset.tex = CR.OPT_TEX[p.name] || ""; }
        tr.appendChild(td);
      });
    tbody.appendChild(tr);
  });
};
