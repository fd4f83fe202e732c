/* Small SVG charts for the dashboard: a time-series line chart, a bar chart, a site map.
   No library: every element is created here, styled by classes from style.css. */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function svg(container, width, height, label) {
    container.textContent = "";
    return el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label }, container);
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function empty(container, message) {
    container.textContent = "";
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = message;
    container.appendChild(p);
  }

  /* series: [{label, cls, points: [{t: ms, v: number|null}]}] */
  function lineChart(container, series, opts) {
    const all = series.flatMap(s => s.points).filter(p => p.v !== null && isFinite(p.v));
    if (!all.length) return empty(container, opts.empty);
    const W = 1200, H = 300, L = 52, R = 24, T = 16, B = 44;
    const root = svg(container, W, H, opts.label);
    const t0 = Math.min(...series.flatMap(s => s.points.map(p => p.t)));
    const t1 = Math.max(...series.flatMap(s => s.points.map(p => p.t)));
    const ymax = niceMax(Math.max(...all.map(p => p.v)));
    const x = t => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (W - L - R);
    const y = v => H - B - (v / ymax) * (H - T - B);
    const axis = el("g", { class: "axis" }, root);
    for (let i = 0; i <= 4; i++) {
      const v = ymax * i / 4;
      el("line", { class: "gridline", x1: L, x2: W - R, y1: y(v), y2: y(v) }, axis);
      el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, axis, opts.format(v));
    }
    // time ticks on round UTC instants: the smallest interval giving at most 8 ticks
    const HOUR = 3600000;
    const every = [1, 3, 6, 12, 24, 48, 168, 336, 720].map(h => h * HOUR).find(ms => (t1 - t0) / ms <= 8) || 720 * HOUR;
    for (let tt = Math.ceil(t0 / every) * every; tt <= t1; tt += every) {
      el("line", { class: "gridline", x1: x(tt), x2: x(tt), y1: T, y2: H - B }, axis);
      el("text", { x: x(tt), y: H - B + 16, "text-anchor": "middle" }, axis, opts.formatTime(tt, t1 - t0));
    }
    el("text", { x: 6, y: T + 4, class: "label" }, root, opts.unit);
    for (const s of series) {
      let d = "", pen = false;
      for (const p of s.points) {
        if (p.v === null || !isFinite(p.v)) { pen = false; continue; }
        d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
        pen = true;
      }
      if (d) el("path", { d, class: `series ${s.cls}` }, root);
    }
    const legend = el("g", { class: "legend" }, root);
    series.forEach((s, i) => {
      const lx = L + i * 200;
      el("rect", { x: lx, y: H - 14, width: 12, height: 4, class: `swatch-${s.cls.replace("series-", "")}` }, legend);
      el("text", { x: lx + 16, y: H - 9, class: "label" }, legend, s.label);
    });
  }

  /* bars: [{label, v}] */
  function barChart(container, bars, opts) {
    const shown = bars.filter(b => b.v > 0);
    if (!shown.length) return empty(container, opts.empty);
    const W = 400, row = 26, L = 130, R = 70, T = 6;
    const H = T + row * shown.length + 6;
    const root = svg(container, W, H, opts.label);
    const vmax = Math.max(...shown.map(b => b.v));
    shown.forEach((b, i) => {
      const yy = T + i * row;
      const w = Math.max(1, (b.v / vmax) * (W - L - R));
      el("text", { x: L - 8, y: yy + 16, "text-anchor": "end", class: "label" }, root, b.label);
      el("rect", { x: L, y: yy + 4, width: w.toFixed(1), height: row - 8, class: "bar-rect", rx: 3 }, root);
      el("text", { x: L + w + 6, y: yy + 16, class: "label" }, root, opts.format(b.v));
    });
  }

  /* sites: [{id, name, kind, location: [lat, lon]}]; an equirectangular projection is exact
     enough at the scale of a territory (a few km). */
  function siteMap(container, sites, centroid, opts) {
    if (!sites.length) return empty(container, opts.empty);
    const W = 400, H = 280, pad = 34;
    const root = svg(container, W, H, opts.label);
    const lat0 = (centroid ? centroid[0] : sites[0].location[0]) * Math.PI / 180;
    const pts = sites.map(s => [s.location[1] * Math.cos(lat0), s.location[0]]);
    if (centroid) pts.push([centroid[1] * Math.cos(lat0), centroid[0]]);
    const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    // the box the points go in leaves room on the right for the labels
    const left = pad, right = W - pad - 120, top = pad, bottom = H - pad;
    const scale = Math.min((right - left) / Math.max(x1 - x0, 1e-4), (bottom - top) / Math.max(y1 - y0, 1e-4),
                           (bottom - top) / 0.004);
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const px = p => (left + right) / 2 + (p[0] - cx) * scale, py = p => (top + bottom) / 2 - (p[1] - cy) * scale;
    el("rect", { x: 0, y: 0, width: W, height: H, fill: "#eef3ef", rx: 6 }, root);
    if (centroid) {
      const c = [centroid[1] * Math.cos(lat0), centroid[0]];
      el("path", { d: `M${px(c) - 6},${py(c)}h12M${px(c)},${py(c) - 6}v12`, class: "centroid" }, root);
    }
    for (const s of sites) {
      const p = [s.location[1] * Math.cos(lat0), s.location[0]];
      const g = el("g", { class: "site-mark", "data-site": s.id }, root);
      el("circle", { cx: px(p).toFixed(1), cy: py(p).toFixed(1), r: 7, class: `site site-${s.kind}` }, g);
      el("title", {}, g, s.name);
      el("text", { x: (px(p) + 10).toFixed(1), y: (py(p) + 4).toFixed(1), class: "label" }, g,
         s.name.length > 26 ? s.name.slice(0, 25) + "…" : s.name);
    }
    // scale bar: one degree of latitude is 111.32 km
    const km = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50].find(k => k / 111.32 * scale > 60) || 50;
    const len = km / 111.32 * scale;
    el("path", { d: `M${pad},${H - 14}h${len.toFixed(1)}`, stroke: "#5b6b63", "stroke-width": 2 }, root);
    el("text", { x: pad + len + 6, y: H - 10, class: "label" }, root, `${km} km`);
  }

  window.BoucleCharts = { lineChart, barChart, siteMap };
})();
