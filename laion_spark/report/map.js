(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("map-data").textContent);
  var n = data.n;
  function floats(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }
  function rgb(hex) { return [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)]; }
  var little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  function pack(c) {
    return little ? ((255 << 24) | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0 : ((c[0] << 24) | (c[1] << 16) | (c[2] << 8) | 255) >>> 0;
  }
  var score = floats(data.score);
  var palette = data.palette.map(rgb);
  var background = pack(rgb(data.background));
  var scored = [], unscored = [];
  for (var i = 0; i < n; i++) (Number.isNaN(score[i]) ? unscored : scored).push(i);
  scored.sort(function (a, b) { return score[a] - score[b]; });
  var drawOrder = Int32Array.from(unscored.concat(scored));
  var colour = new Uint32Array(n).fill(pack([128, 128, 128]));
  scored.forEach(function (p, rank) {
    colour[p] = pack(palette[Math.min(palette.length - 1, Math.floor((rank / scored.length) * palette.length))]);
  });
  var GRID = 256;
  var views = data.views.map(function (v) { return { name: v.name, label: v.label, x: floats(v.x), y: floats(v.y), grid: null }; });

  function buildGrid(v) {
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity, i;
    for (i = 0; i < n; i++) {
      var x = v.x[i], y = v.y[i];
      if (!isFinite(x) || !isFinite(y)) continue;
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (x0 > x1) { x0 = y0 = 0; x1 = y1 = 1; }
    var cell = Math.max(x1 - x0, y1 - y0, 1e-9) / GRID;
    var cells = new Int32Array(n), start = new Int32Array(GRID * GRID + 1), items = new Int32Array(n);
    for (i = 0; i < n; i++) {
      if (!isFinite(v.x[i]) || !isFinite(v.y[i])) { cells[i] = -1; continue; }
      var cx = Math.min(GRID - 1, Math.floor((v.x[i] - x0) / cell)), cy = Math.min(GRID - 1, Math.floor((v.y[i] - y0) / cell));
      cells[i] = cy * GRID + cx;
      start[cells[i] + 1]++;
    }
    for (i = 0; i < GRID * GRID; i++) start[i + 1] += start[i];
    var fill = start.slice(0, GRID * GRID);
    for (i = 0; i < n; i++) if (cells[i] >= 0) items[fill[cells[i]]++] = i;
    v.grid = { x0: x0, x1: x1, y0: y0, y1: y1, cell: cell, start: start, items: items };
  }

  var canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
  var tip = document.getElementById("tip");
  var state = { view: null, cx: 0, cy: 0, scale: 1, hovered: -1, pending: false, drawn: 0 };
  var image = null;

  function size() { return { w: canvas.clientWidth, h: canvas.clientHeight }; }
  function reset() {
    var g = state.view.grid, s = size();
    state.cx = (g.x0 + g.x1) / 2; state.cy = (g.y0 + g.y1) / 2;
    state.scale = 0.92 * Math.min(s.w / Math.max(g.x1 - g.x0, 1e-9), s.h / Math.max(g.y1 - g.y0, 1e-9));
    request();
  }
  function toScreen(x, y) { var s = size(); return { x: (x - state.cx) * state.scale + s.w / 2, y: s.h / 2 - (y - state.cy) * state.scale }; }
  function toData(px, py) { var s = size(); return { x: (px - s.w / 2) / state.scale + state.cx, y: state.cy - (py - s.h / 2) / state.scale }; }

  function draw() {
    state.pending = false;
    var dpr = window.devicePixelRatio || 1, s = size();
    var W = Math.max(1, Math.round(s.w * dpr)), H = Math.max(1, Math.round(s.h * dpr));
    if (canvas.width !== W || canvas.height !== H || !image) { canvas.width = W; canvas.height = H; image = ctx.createImageData(W, H); }
    var buf = new Uint32Array(image.data.buffer);
    buf.fill(background);
    var v = state.view, k = state.scale * dpr, ox = W / 2 - state.cx * k, oy = H / 2 + state.cy * k;
    var dot = Math.max(1, Math.round(dpr * (n > 30000 ? 1.5 : 2.5))), drawn = 0;
    for (var j = 0; j < n; j++) {
      var i = drawOrder[j], px = Math.round(v.x[i] * k + ox), py = Math.round(oy - v.y[i] * k);
      if (!(px >= 0 && py >= 0 && px < W && py < H)) continue;
      drawn++;
      var c = colour[i];
      for (var dy = 0; dy < dot && py + dy < H; dy++) {
        var row = (py + dy) * W + px;
        for (var dx = 0; dx < dot && px + dx < W; dx++) buf[row + dx] = c;
      }
    }
    if (state.hovered >= 0) {
      var h = toScreen(v.x[state.hovered], v.y[state.hovered]);
      ctx.putImageData(image, 0, 0);
      ctx.strokeStyle = "#ffffff"; ctx.lineWidth = dpr * 1.5;
      ctx.beginPath(); ctx.arc(h.x * dpr, h.y * dpr, dpr * 6, 0, 2 * Math.PI); ctx.stroke();
    } else {
      ctx.putImageData(image, 0, 0);
    }
    state.drawn = drawn;
    canvas.dataset.drawn = String(drawn);
    document.body.dataset.points = String(n);
  }
  function request() { if (!state.pending) { state.pending = true; window.requestAnimationFrame(draw); } }

  function pick(px, py) {
    var v = state.view, g = v.grid, p = toData(px, py), r = 8 / state.scale, best = -1, bestD = r * r;
    var c0 = Math.max(0, Math.floor((p.x - r - g.x0) / g.cell)), c1 = Math.min(GRID - 1, Math.floor((p.x + r - g.x0) / g.cell));
    var r0 = Math.max(0, Math.floor((p.y - r - g.y0) / g.cell)), r1 = Math.min(GRID - 1, Math.floor((p.y + r - g.y0) / g.cell));
    for (var row = r0; row <= r1; row++) {
      for (var col = c0; col <= c1; col++) {
        var cell = row * GRID + col;
        for (var t = g.start[cell]; t < g.start[cell + 1]; t++) {
          var i = g.items[t], dx = v.x[i] - p.x, dy = v.y[i] - p.y, d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
  function line(cls, text) { var el = document.createElement("div"); el.className = cls; el.textContent = text; return el; }
  function showTip(i, px, py) {
    tip.replaceChildren(
      data.text[i] == null ? line("none", "(no caption)") : line("cap", data.text[i]),
      line("score", Number.isNaN(score[i]) ? "aesthetic score: none" : "aesthetic score " + score[i].toFixed(2)),
      data.url[i] == null ? line("none", "(no URL)") : line("url", data.url[i])
    );
    tip.hidden = false;
    var s = size(), left = px + 14, top = py + 14;
    if (left + tip.offsetWidth > s.w) left = Math.max(0, px - 14 - tip.offsetWidth);
    if (top + tip.offsetHeight > s.h) top = Math.max(0, py - 14 - tip.offsetHeight);
    tip.style.left = left + "px"; tip.style.top = top + "px";
  }
  function hover(px, py) {
    var i = pick(px, py);
    if (i !== state.hovered) { state.hovered = i; request(); }
    if (i >= 0) showTip(i, px, py); else tip.hidden = true;
    return i;
  }
  function local(e) { var b = canvas.getBoundingClientRect(); return { x: e.clientX - b.left, y: e.clientY - b.top }; }
  function zoom(factor, px, py) {
    var before = toData(px, py);
    state.scale *= factor;
    var after = toData(px, py);
    state.cx += before.x - after.x; state.cy += before.y - after.y;
    request();
  }

  var drag = null;
  canvas.addEventListener("pointerdown", function (e) {
    drag = { x: e.clientX, y: e.clientY, moved: false };
    try { canvas.setPointerCapture(e.pointerId); } catch { /* a synthetic pointer cannot be captured */ }
    canvas.classList.add("dragging");
  });
  canvas.addEventListener("pointermove", function (e) {
    var p = local(e);
    if (!drag) { hover(p.x, p.y); return; }
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
    state.cx -= dx / state.scale; state.cy += dy / state.scale;
    drag.x = e.clientX; drag.y = e.clientY;
    tip.hidden = true; request();
  });
  canvas.addEventListener("pointerup", function (e) {
    var clicked = drag && !drag.moved;
    drag = null; canvas.classList.remove("dragging");
    if (!clicked) return;
    var p = local(e), i = hover(p.x, p.y), url = i >= 0 ? data.url[i] : null;
    if (url && /^https?:\/\//i.test(url)) window.open(url, "_blank", "noopener,noreferrer");
  });
  canvas.addEventListener("pointerleave", function () { if (!drag) { tip.hidden = true; state.hovered = -1; request(); } });
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    var p = local(e);
    zoom(Math.exp(-e.deltaY * 0.0015), p.x, p.y);
  }, { passive: false });
  canvas.addEventListener("dblclick", function () { reset(); });
  window.addEventListener("keydown", function (e) {
    var s = size();
    if (e.key === "+" || e.key === "=") zoom(1.25, s.w / 2, s.h / 2);
    else if (e.key === "-") zoom(0.8, s.w / 2, s.h / 2);
    else if (e.key === "0") reset();
  });
  window.addEventListener("resize", request);

  var buttons = document.getElementById("views");
  function setView(name) {
    var v = views.find(function (w) { return w.name === name; });
    if (!v) return false;
    if (!v.grid) buildGrid(v);
    state.view = v; state.hovered = -1; tip.hidden = true;
    Array.prototype.forEach.call(buttons.children, function (b) { b.setAttribute("aria-pressed", String(b.dataset.view === name)); });
    reset();
    return true;
  }
  views.forEach(function (v) {
    var b = document.createElement("button");
    b.type = "button"; b.dataset.view = v.name; b.textContent = v.label;
    b.addEventListener("click", function () { setView(v.name); });
    buttons.appendChild(b);
  });
  document.getElementById("reset").addEventListener("click", reset);

  var ramp = document.querySelector(".legend .ramp");
  ramp.style.background = "linear-gradient(to right, " + data.palette.filter(function (_, i) { return i % 16 === 0; }).concat([data.palette[data.palette.length - 1]]).join(", ") + ")";
  if (scored.length) {
    document.getElementById("low").textContent = score[scored[0]].toFixed(2);
    document.getElementById("high").textContent = score[scored[scored.length - 1]].toFixed(2);
  }

  window.laionMap = {
    views: views.map(function (v) { return v.name; }),
    setView: setView,
    reset: reset,
    zoom: zoom,
    pick: pick,
    hover: hover,
    screenOf: function (i) { var v = state.view, p = toScreen(v.x[i], v.y[i]), b = canvas.getBoundingClientRect(); return { x: p.x + b.left, y: p.y + b.top }; },
    get view() { return state.view.name; },
    get hovered() { return state.hovered; },
    get drawn() { return state.drawn; },
    get scale() { return state.scale; },
    text: function (i) { return data.text[i]; },
    draw: draw
  };
  if (views.length) setView(views[0].name);
  draw();
})();
