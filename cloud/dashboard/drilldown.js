/* Boucle dashboard: drill-down views below the overview, for the territory and period
   chosen above. Sites ranked by any indicator (a site opens its page), device health
   (which sensor to visit), and a site page (indicators, load curve, bins, devices,
   opening hours). The address takes ?view=ranking|health|site&site=ID. */
"use strict";
(function () {
  const A = () => window.BoucleApp, C = window.BoucleCharts;
  const $ = id => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  let view = params.get("view") || "ranking";
  let site = params.get("site");
  let choice = { indicator: params.get("indicator") || "energy.consumed", per: "site", order: "desc" };

  const el = (tag, attrs, ...children) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") n.className = v; else if (k === "text") n.textContent = v; else n.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) n.append(c);
    return n;
  };

  function table(headers, rows) {
    const t = el("table");
    t.append(el("thead", {}, el("tr", {}, ...headers.map(h => el("th", { text: h })))));
    const body = el("tbody");
    for (const r of rows) body.append(r);
    t.append(body);
    return t;
  }

  function select(id, options, value, onChange) {
    const s = el("select", { id });
    for (const [v, label] of options) {
      const o = el("option", { value: v, text: label });
      if (v === value) o.selected = true;
      s.append(o);
    }
    s.addEventListener("change", () => onChange(s.value));
    return s;
  }

  async function ranking(box) {
    const { json, t, number, indicatorName, period, scope } = A();
    const p = period();
    const ids = Object.keys(window.BOUCLE_I18N.en.names);
    const controls = el("div", { class: "drill-controls" },
      el("label", {}, t("rank_by"), " ", select("rank-indicator", ids.map(i => [i, indicatorName({ id: i })]),
        choice.indicator, v => { choice.indicator = v; refresh(); })),
      el("label", {}, t("per"), " ", select("rank-per", ["site", "m2", "employee"].map(v => [v, t(`per_${v}`)]),
        choice.per, v => { choice.per = v; refresh(); })),
      el("label", {}, t("order"), " ", select("rank-order", ["desc", "asc"].map(v => [v, t(`order_${v}`)]),
        choice.order, v => { choice.order = v; refresh(); })));
    const r = await json(`/v1/territories/${encodeURIComponent(scope().id)}/ranking?indicator=${choice.indicator}`
      + `&per=${choice.per}&order=${choice.order}&${p.query}`);
    const rows = r.sites.map(s => {
      const link = el("button", { type: "button", class: "site-link", text: s.name, "data-site": s.site });
      link.addEventListener("click", () => { site = s.site; show("site"); });
      return el("tr", { "data-site": s.site }, el("td", { text: s.rank ?? "—" }), el("td", {}, link),
        el("td", { class: "num", text: `${number(s.value)} ${A().unit(r.unit)}` }),
        el("td", { text: `${number(s.coverage * 100, 0)} %` }));
    });
    box.append(controls, table([t("rank"), t("site_col"), t("value_col"), t("coverage")], rows));
  }

  // why to visit a device, in the page's language (each reason's `messages`; the API renders them)
  const visitText = d => (d.visit_reasons.length
    ? d.visit_reasons.map(r => r.messages[A().lang()] || r.messages.en).join(" · ") : A().t("nothing_to_do"));

  function healthRows(devices) {
    const { t, number } = A();
    return devices.map(d => el("tr", { class: d.visit.length ? "to-visit" : "", "data-device": d.id },
      el("td", { text: d.id }), el("td", { text: d.online ? t("online") : t("offline") }),
      el("td", { text: d.last_seen ? d.last_seen.replace("T", " ").slice(0, 16) : "—" }),
      el("td", { text: d.buffer_depth ?? "—" }), el("td", { text: d.dropped ?? "—" }),
      el("td", { text: d.rssi ?? "—" }), el("td", { text: d.firmware ?? "—" }),
      el("td", { text: d.coverage === null ? "—" : `${number(d.coverage, 0)} %` }),
      el("td", { class: "visit", text: visitText(d) })));
  }

  const HEALTH_HEADERS = () => ["device", "online", "last_seen", "buffer", "dropped", "rssi", "firmware", "coverage",
    "visit"].map(k => A().t(k));

  async function health(box) {
    const { json, t, period, scope } = A();
    const s = scope();
    const base = s.kind === "territory" ? "territories" : "sites";
    const h = await json(`/v1/${base}/${encodeURIComponent(s.id)}/device-health?${period().query}`);
    box.append(el("p", { class: "to-visit-count", text: t("to_visit", { n: h.to_visit, total: h.devices.length }) }),
      table(HEALTH_HEADERS(), healthRows(h.devices)));
  }

  // a bin's fill from its newest reading: the figure and a gauge (amber from 75 %, red from 90 %)
  function fillCell(pct) {
    if (pct === null || pct === undefined) return el("td", { class: "bin-fill", text: "—" });
    const level = pct >= 90 ? "fill-high" : pct >= 75 ? "fill-mid" : "fill-low";
    const bar = el("span", { class: `fill-bar ${level}` });
    bar.style.width = `${Math.min(100, pct)}%`;  // CSSOM: the page's CSP forbids style attributes
    return el("td", { class: "bin-fill", "data-fill": String(pct) }, el("span", { class: "fill-gauge" }, bar),
      el("span", { class: "fill-value", text: `${A().number(pct, 0)} %` }));
  }

  async function sitePage(box) {
    const { json, t, number, unit, indicatorName, period, step, formatTime } = A();
    const p = period();
    const id = encodeURIComponent(site);
    const [info, set, curve, h] = await Promise.all([
      json(`/v1/sites/${id}`), json(`/v1/sites/${id}/indicators?${p.query}`),
      json(`/v1/sites/${id}/indicators/energy.consumed/series?step=${step(p)[0]}&${p.query}`),
      json(`/v1/sites/${id}/device-health?${p.query}`)]);
    const back = el("button", { type: "button", class: "quiet", text: t("back") });
    back.addEventListener("click", () => show("ranking"));
    box.append(back, el("h3", { class: "site-name", text: info.name }),
      el("p", { class: "opening-hours", text: `${t("opening_hours")} : ${info.opening_hours || "—"}` }));
    box.append(el("h4", { text: t("site_indicators") }), table([t("indicators"), t("value_col"), t("coverage")],
      set.indicators.filter(v => v.value !== null).map(v => el("tr", { "data-id": v.id },
        el("td", { text: indicatorName(v) }), el("td", { text: `${number(v.value)} ${unit(v.unit)}` }),
        el("td", { text: `${number(v.coverage * 100, 0)} %` })))));
    const chart = el("div", { class: "chart site-chart", id: "site-chart" });
    box.append(el("h4", { text: t("load_curve") }), chart);
    const hours = curve.step_s / 3600;
    C.lineChart(chart, [{ label: t("grid"), cls: "series-grid",
      points: curve.points.map(q => ({ t: Date.parse(q.from), v: q.value === null ? null : q.value / hours })) }],
    { label: t("load_curve"), unit: t("kw"), empty: t("no_data"), format: v => number(v),
      formatTime: ms => formatTime(ms, p.to - p.from) });
    const bins = h.devices.filter(d => d.kind === "waste");
    box.append(el("h4", { text: t("bins") }), table([t("device"), t("stream"), t("fill_now"), t("weight_now"),
      t("coverage"), t("visit")],
      bins.map(b => el("tr", { class: "bin", "data-device": b.id }, el("td", { text: b.id }),
        el("td", { text: (window.BOUCLE_I18N[document.documentElement.lang] || {}).streams?.[b.stream] || b.stream }),
        fillCell(b.fill_pct),
        el("td", { class: "weight num", text: b.weight_kg === null ? "—" : `${number(b.weight_kg)} ${t("kg")}` }),
        el("td", { text: b.coverage === null ? "—" : `${number(b.coverage, 0)} %` }),
        el("td", { class: "visit", text: visitText(b) })))));
    box.append(el("h4", { text: t("site_devices") }), table(HEALTH_HEADERS(), healthRows(h.devices)));
  }

  const VIEWS = { ranking, health, site: sitePage };

  async function refresh() {
    const box = $("drill-view");
    if (!box || !A()) return;
    if (view === "ranking" && A().scope().kind !== "territory") view = "health";  // a site key ranks nothing
    if (view === "site" && !site) view = "ranking";
    for (const b of document.querySelectorAll("#drilldown [data-view]")) {
      b.setAttribute("aria-pressed", String(b.dataset.view === view));
      b.hidden = b.dataset.view === "ranking" && A().scope().kind !== "territory";
    }
    box.dataset.view = view;
    box.dataset.state = "loading";
    const fresh = el("div");
    try {
      await VIEWS[view](fresh);
      box.replaceChildren(fresh);
      box.dataset.state = "ready";
    } catch (e) {
      box.replaceChildren(el("p", { class: "error", text: A().t("error", { msg: e.message }) }));
      box.dataset.state = "error";
    }
  }

  function show(name) {
    view = name;
    refresh();
  }

  for (const b of document.querySelectorAll("#drilldown [data-view]")) b.addEventListener("click", () => show(b.dataset.view));
  window.BoucleDrilldown = { refresh, show };
})();
