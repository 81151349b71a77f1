// Canvas drawing: heatmaps from the server's RGBA bytes, points, the loss curve, the network.
"use strict";
window.CR = window.CR || {};

CR.PALETTE = ["#f59322", "#0877bd", "#2ea043", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

// base64 RGBA (size x size, or w x h) -> an offscreen canvas holding the image
CR.imageCanvas = (b64, w, h) => {
  const bytes = Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0));
  const c = document.createElement("canvas");
  c.width = w; c.height = h || w;
  c.getContext("2d").putImageData(new ImageData(bytes, w, h || w), 0, 0);
  return c;
};

CR.diverging = (t) => {  // the server's map: orange (-1) .. grey (0) .. blue (+1)
  t = Math.max(-1, Math.min(1, t));
  const mid = [232, 234, 235], end = t < 0 ? [245, 147, 34] : [8, 119, 189], a = Math.abs(t);
  return `rgb(${mid.map((m, i) => Math.round(m + (end[i] - m) * a)).join(",")})`;
};

CR.pointColor = (y) => (CR.task === "regression" ? CR.diverging(y) : CR.PALETTE[y % CR.PALETTE.length]);

CR.drawBoundary = (canvas, heat, points, showTest) => {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  if (heat) {  // drawn paler than the points, so a point on its own class's side still shows
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    ctx.globalAlpha = 0.72;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(CR.imageCanvas(heat.rgba, heat.size), 0, 0, W, H);
    ctx.globalAlpha = 1;
  }
  if (!points) return;
  const E = points.extent, sx = (x) => ((x + E) / (2 * E)) * W, sy = (y) => ((E - y) / (2 * E)) * H;
  const draw = (pts, stroke) => {
    for (const [a, b, y] of pts) {
      ctx.beginPath();
      ctx.arc(sx(a), sy(b), 3.2, 0, 2 * Math.PI);
      ctx.fillStyle = CR.pointColor(y);
      ctx.fill();
      ctx.lineWidth = 1;
      ctx.strokeStyle = stroke;
      ctx.stroke();
    }
  };
  draw(points.train, "#fff");
  if (showTest) draw(points.test, "#000");
  ctx.fillStyle = "#333"; ctx.font = "10px sans-serif";
  ctx.fillText(`-${E}`, 2, H - 3); ctx.fillText(`${E}`, W - 18, H - 3);
};

CR.drawLossChart = (canvas, history) => {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.strokeStyle = "#ddd"; ctx.strokeRect(0.5, 0.5, W - 1, H - 1);
  if (!history || history.length < 2) return;
  const finite = history.flatMap((h) => [h[1], h[2]]).filter((v) => v !== null && isFinite(v));
  const top = Math.max(1e-9, ...finite), t0 = history[0][0], t1 = history[history.length - 1][0] || 1;
  const line = (k, color) => {
    ctx.beginPath();
    history.forEach((h, i) => {
      const x = ((h[0] - t0) / Math.max(1, t1 - t0)) * (W - 4) + 2, v = h[k] === null ? top : h[k];
      const y = H - 3 - (Math.min(v, top) / top) * (H - 8);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = color; ctx.lineWidth = 1.6; ctx.stroke();
  };
  line(1, "#333"); line(2, "#f59322");
  ctx.fillStyle = "#555"; ctx.font = "10px sans-serif"; ctx.fillText(top.toPrecision(3), 3, 10);
};

// the network: columns of nodes (features, hidden layers, output); returns the hit-test layout
CR.networkLayout = (canvas, features, hidden, nOut) => {
  const cols = [features.length, ...hidden, nOut], W = canvas.width, H = canvas.height, box = 30;
  const dx = (W - 2 * box) / Math.max(1, cols.length - 1);
  const nodes = [];
  cols.forEach((n, c) => {
    const dy = Math.min(44, (H - box) / Math.max(1, n));
    const y0 = (H - dy * (n - 1)) / 2 - box / 2;
    for (let j = 0; j < n; j++) {
      const last = c === cols.length - 1, id = c === 0 ? `f:${j}` : last ? (nOut > 1 ? `out:${j}` : "out") : `h:${c - 1}:${j}`;
      nodes.push({ id, col: c, j, x: box / 2 + c * dx, y: y0 + j * dy, w: box, h: box });
    }
  });
  return { cols, nodes, box, dx };
};

CR.drawNetwork = (canvas, frame, layout) => {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const byCol = layout.cols.map((_, c) => layout.nodes.filter((n) => n.col === c));
  const edges = [];
  frame.weights.forEach((W, l) => {  // W[j][i]: from node i of column l to node j of column l + 1
    W.forEach((row, j) => row.forEach((w, i) => {
      const a = byCol[l][i], b = byCol[l + 1][j];
      if (!a || !b) return;
      edges.push({ l, i, j, w, x1: a.x + a.w, y1: a.y + a.h / 2, x2: b.x, y2: b.y + b.h / 2 });
    }));
  });
  const wmax = Math.max(1e-6, ...edges.map((e) => Math.abs(e.w)));
  for (const e of edges) {
    ctx.beginPath();
    ctx.moveTo(e.x1, e.y1);
    ctx.bezierCurveTo((e.x1 + e.x2) / 2, e.y1, (e.x1 + e.x2) / 2, e.y2, e.x2, e.y2);
    ctx.strokeStyle = CR.diverging(e.w / wmax);
    ctx.lineWidth = 0.5 + 4 * Math.abs(e.w) / wmax;
    ctx.stroke();
  }
  const thumbs = frame.thumbnails || CR.lastThumbs || {};
  for (const n of layout.nodes) {
    if (thumbs[n.id]) ctx.drawImage(CR.imageCanvas(thumbs[n.id], 20), n.x, n.y, n.w, n.h);
    ctx.strokeStyle = n.id === CR.hoverNode ? "#000" : "#888";
    ctx.lineWidth = n.id === CR.hoverNode ? 2 : 1;
    ctx.strokeRect(n.x + 0.5, n.y + 0.5, n.w, n.h);
  }
  ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
  frame.features.forEach((f, k) => ctx.fillText(f, 2, byCol[0][k].y - 3));
  layout.edges = edges;
};

CR.hitNetwork = (layout, x, y) => {
  const node = layout.nodes.find((n) => x >= n.x && x <= n.x + n.w && y >= n.y && y <= n.y + n.h);
  if (node) return { node };
  let best = null, bestD = 6;
  for (const e of layout.edges || []) {  // distance to the chord is close enough for hovering
    const vx = e.x2 - e.x1, vy = e.y2 - e.y1, t = Math.max(0, Math.min(1, ((x - e.x1) * vx + (y - e.y1) * vy) / (vx * vx + vy * vy)));
    const d = Math.hypot(x - e.x1 - t * vx, y - e.y1 - t * vy);
    if (d < bestD) { bestD = d; best = e; }
  }
  return best ? { edge: best } : {};
};

CR.drawRace = (canvas, race) => {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(CR.imageCanvas(race.contours.rgba, race.contours.width, race.contours.height), 0, 0, W, H);
  const [x0, x1] = race.xlim, [y0, y1] = race.ylim;
  const sx = (x) => ((x - x0) / (x1 - x0)) * W, sy = (y) => ((y1 - y) / (y1 - y0)) * H;
  race.paths.forEach((p, k) => {
    ctx.strokeStyle = ctx.fillStyle = CR.PALETTE[k % CR.PALETTE.length];
    ctx.lineWidth = 1.8;
    ctx.beginPath();
    p.path.forEach(([a, b], i) => (i ? ctx.lineTo(sx(a), sy(b)) : ctx.moveTo(sx(a), sy(b))));
    ctx.stroke();
    p.path.forEach(([a, b]) => { ctx.beginPath(); ctx.arc(sx(a), sy(b), 1.8, 0, 2 * Math.PI); ctx.fill(); });
    ctx.font = "13px sans-serif";
    ctx.fillText(`${p.name}${p.diverged ? " (diverged)" : ""}`, 10, 20 + 17 * k);
  });
  ctx.fillStyle = "#000";
  ctx.font = "20px sans-serif";
  ctx.fillText("★", sx(race.minimum[0]) - 8, sy(race.minimum[1]) + 7);
  ctx.beginPath(); ctx.arc(sx(race.start[0]), sy(race.start[1]), 4, 0, 2 * Math.PI); ctx.fill();
};
