/* Boucle dashboard: territory (or, for a site key, site) and period choice, indicator
   cards, charts, map. Talks only to this origin's /v1 API with the key kept in this tab's
   sessionStorage (gone when the tab closes; never in localStorage, where anyone using this
   browser profile later would find it). */
"use strict";
(function () {
  const I18N = window.BOUCLE_I18N, C = window.BoucleCharts;
  const $ = id => document.getElementById(id);
  const DAY = 86400000;
  const params = new URLSearchParams(location.search);
  let lang = pickLanguage();
  // kind: "territory" for territory and admin keys, "site" for a site key (it sees no territory)
  let state = { kind: "territory", places: [], last: null };

  function pickLanguage() {
    const chosen = params.get("lang") || localStorage.getItem("boucle.lang");
    if (chosen === "fr" || chosen === "en") return chosen;
    // the server read Accept-Language; navigator.languages says the same in a browser
    const served = document.documentElement.dataset.lang;
    if (served === "fr" || served === "en") return served;
    const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
    for (const l of prefs) {
      const base = String(l).toLowerCase().slice(0, 2);
      if (base === "fr" || base === "en") return base;
    }
    return "en";
  }

  const t = (key, vars) => {
    let s = I18N[lang][key] ?? I18N.en[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
    return s;
  };

  // A caveat arrives in English, filled in from a template; shown in the page's language
  // when that language has the template (else as it came).
  const caveat = (text) => {
    for (const [en, local] of Object.entries(I18N[lang].caveats || {})) {
      const names = [];
      const pattern = en.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, (_, name) => {
        names.push(name);
        return "(.+?)";
      });
      const m = new RegExp(`^${pattern}$`).exec(text);
      if (m) return names.reduce((s, name, i) => s.replace(`{${name}}`, m[i + 1]), local);
    }
    return text;
  };

  function applyLanguage() {
    document.documentElement.lang = lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    $("lang").textContent = lang === "fr" ? "English" : "Français";
    document.title = `${t("title")} · ${t("subtitle")}`;
  }

  function number(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return t("no_value");
    const abs = Math.abs(v);
    const d = digits ?? (abs >= 100 ? 0 : abs >= 10 ? 1 : 2);
    return new Intl.NumberFormat(lang, { maximumFractionDigits: d }).format(v);
  }

  const unit = u => (I18N[lang].units || {})[u] || u;
  const indicatorName = v => I18N[lang].names[v.id] || v.name || v.id;
  const streamName = s => (I18N[lang].streams || {})[s] || s;

  // --- key -------------------------------------------------------------------------
  const KEY = "boucle.key";
  const key = () => sessionStorage.getItem(KEY);
  let offeredKey = null;  // a link's key that differs from the one in use, until the user chooses

  // A link /#key=bk_... hands a key over: it leaves the address bar (and the history) at
  // once; it is taken as is when the tab has no key yet, else only if the user says so.
  // Returns true when the key in use changed.
  function takeKeyFromFragment() {
    localStorage.removeItem(KEY);  // where earlier versions kept it
    const m = location.hash.match(/(?:^#|&)key=([^&]+)/);
    if (!m) return false;
    history.replaceState(null, "", location.pathname + location.search);
    let offered;
    try { offered = decodeURIComponent(m[1]).trim(); } catch (e) { return false; }
    if (!offered || offered === key()) return false;
    if (!key()) {
      sessionStorage.setItem(KEY, offered);
      return true;
    }
    offeredKey = offered;
    $("key-swap").hidden = false;
    return false;
  }

  function answerKeySwap(use) {
    $("key-swap").hidden = true;
    if (use && offeredKey) sessionStorage.setItem(KEY, offeredKey);
    offeredKey = null;
    if (use) start();
  }

  class Unauthorized extends Error {}

  async function api(path) {
    const r = await fetch(path, { headers: { "X-API-Key": key() || "" } });
    if (r.status === 401) throw new Unauthorized();
    if (!r.ok) {
      let msg = `${r.status}`;
      try { const p = await r.json(); msg = `${p.title}${p.detail ? " — " + p.detail : ""}`; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r;
  }
  const json = async path => (await api(path)).json();

  function showLogin(message) {
    $("main").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").focus();
  }

  // --- period ------------------------------------------------------------------------
  const isoDay = d => d.toISOString().slice(0, 10);

  function period() {
    // inputs are inclusive days (UTC); the API's `to` is exclusive
    const from = new Date($("from").value + "T00:00:00Z");
    const to = new Date(new Date($("to").value + "T00:00:00Z").getTime() + DAY);
    return { from, to, query: `from=${isoDay(from)}&to=${isoDay(to)}` };
  }

  function applyPreset() {
    const days = $("preset").value;
    if (days === "custom") return;
    const today = new Date(Date.now());
    $("to").value = isoDay(today);
    $("from").value = isoDay(new Date(today.getTime() - (Number(days) - 1) * DAY));
  }

  function step(p) {
    const days = (p.to - p.from) / DAY;
    if (days <= 3) return ["15m", 900];
    if (days <= 10) return ["1h", 3600];
    if (days <= 45) return ["6h", 21600];
    return ["1d", 86400];
  }

  function formatTime(ms, spanMs) {
    const d = new Date(ms);
    const o = spanMs <= 3 * DAY ? { weekday: "short", hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short" };
    return new Intl.DateTimeFormat(lang, { ...o, timeZone: "UTC" }).format(d);
  }

  // --- rendering -----------------------------------------------------------------------
  function card(v) {
    const standing = v.standing || "none";
    const a = document.createElement("article");
    a.className = `card standing-${standing}`;
    a.dataset.id = v.id;
    const add = (tag, cls, text) => {
      const n = document.createElement(tag);
      if (cls) n.className = cls;
      if (text !== undefined) n.textContent = text;
      a.appendChild(n);
      return n;
    };
    add("h3", "", indicatorName(v)).title = v.formula;
    const value = add("p", "value", number(v.value));
    const u = document.createElement("span");
    u.className = "unit";
    u.textContent = unit(v.unit);
    value.appendChild(u);
    if (v.standing) add("p", "standing", t(`standing_${standing}`));
    const r = v.reference;
    if (r && (r.target !== undefined || r.limit !== undefined || r.average !== undefined)) {
      const parts = [];
      if (r.target !== undefined) parts.push(`${t("target")} ${number(r.target)}`);
      if (r.limit !== undefined) parts.push(`${t("limit")} ${number(r.limit)}`);
      if (r.average !== undefined) parts.push(`${t("average")} ${number(r.average)}`);
      const ref = add("p", "ref", parts.join(" · "));
      if (v.reference.source) ref.title = `${v.reference.source}${v.reference.year ? " (" + v.reference.year + ")" : ""}`;
    }
    const cov = add("div", v.coverage < 0.8 ? "coverage low" : "coverage");
    const label = document.createElement("span");
    label.textContent = `${t("coverage")} ${number(v.coverage * 100, 0)} %`;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${Math.round(v.coverage * 100)}%`;
    bar.appendChild(fill);
    cov.append(label, bar);
    if (v.change) a.appendChild(window.BoucleCompare.changeLine(v.change, t, number));
    for (const c of v.caveats || []) add("p", "caveat", caveat(c));
    return a;
  }

  function renderCards(set) {
    const box = $("cards");
    box.textContent = "";
    for (const v of set.indicators) box.appendChild(card(v));
  }

  function seriesPoints(series) {
    const hours = series.step_s / 3600;
    return series.points.map(p => ({ t: Date.parse(p.from), v: p.value === null ? null : p.value / hours }));
  }

  function renderEnergy(grid, pv, p) {
    C.lineChart($("chart-energy"), [
      { label: t("grid"), cls: "series-grid", points: seriesPoints(grid) },
      { label: t("pv"), cls: "series-pv", points: seriesPoints(pv) },
    ], { label: t("load_curve"), unit: t("kw"), empty: t("no_data"), format: v => number(v),
         formatTime: (ms, span) => formatTime(ms, p.to - p.from) });
  }

  function renderWaste(set) {
    const generated = set.indicators.find(v => v.id === "waste.generated");
    const byStream = (generated && generated.breakdown && generated.breakdown.by_stream) || {};
    const bars = Object.entries(byStream).map(([s, kg]) => ({ label: streamName(s), v: kg })).sort((a, b) => b.v - a.v);
    C.barChart($("chart-waste"), bars, { label: t("waste_by_stream"), empty: t("no_data"), format: v => `${number(v)} ${t("kg")}` });
  }

  function renderMap(sites, territory) {
    C.siteMap($("map"), sites, territory && territory.centroid, { label: t("map"), empty: t("no_data") });
  }

  function renderOpportunities(pooling, symbiosis, names) {
    const box = $("opportunities");
    box.textContent = "";
    box.closest(".panel").hidden = !pooling;
    if (!pooling) return;
    const h = (text) => { const n = document.createElement("h4"); n.textContent = text; box.appendChild(n); };
    h(t("pooling"));
    const p = document.createElement("p");
    p.textContent = pooling.gain_pp === null ? t("no_data")
      : t("pooling_text", { km: number(pooling.distance_km), pp: number(pooling.gain_pp, 1), kwh: number(pooling.shared_kwh) });
    box.appendChild(p);
    h(t("symbiosis"));
    if (!symbiosis.matches.length) {
      const e = document.createElement("p");
      e.className = "empty";
      e.textContent = t("no_matches");
      box.appendChild(e);
      return;
    }
    const ul = document.createElement("ul");
    ul.className = "opps";
    for (const m of symbiosis.matches.slice(0, 8)) {
      const li = document.createElement("li");
      li.textContent = t("match", { from: names[m.from_site] || m.from_site, to: names[m.to_site] || m.to_site,
        material: streamName(m.material), kg: number(m.matchable_kg_per_month), km: number(m.distance_km, 1) });
      ul.appendChild(li);
    }
    box.appendChild(ul);
  }

  // --- loading -------------------------------------------------------------------------
  // the indicator set's query: the period, and the period it is compared with when the toggle says so
  const setQuery = p => `${p.query}${$("compare").value ? "&compare=" + encodeURIComponent($("compare").value) : ""}`;

  async function load() {
    const tid = $("territory").value;
    const p = period();
    const query = setQuery(p);
    const [stepText] = step(p);
    const id = encodeURIComponent(tid);
    const territorial = state.kind === "territory";
    const base = territorial ? `/v1/territories/${id}` : `/v1/sites/${id}`;
    $("status").textContent = t("loading");
    document.body.dataset.state = "loading";
    try {
      const [set, sites, devices, grid, pv, pooling, symbiosis] = await Promise.all([
        json(`${base}/indicators?${query}`),
        territorial ? json(`/v1/sites?territory=${id}`) : json(`/v1/sites/${id}`).then(s => [s]),
        json(`/v1/devices?${territorial ? "territory" : "site"}=${id}`),
        json(`${base}/indicators/energy.consumed/series?step=${stepText}&${p.query}`),
        json(`${base}/indicators/energy.pv_produced/series?step=${stepText}&${p.query}`),
        territorial ? json(`${base}/pooling?${p.query}`) : null,
        territorial ? json(`${base}/symbiosis?${p.query}`) : null,
      ]);
      state.last = { set, sites, devices, grid, pv, pooling, symbiosis, p, tid, query, kind: state.kind };
      render();
      if (window.BoucleDrilldown) await window.BoucleDrilldown.refresh();
      document.body.dataset.state = "ready";
    } catch (e) {
      document.body.dataset.state = "error";
      if (e instanceof Unauthorized) return showLogin(t("key_rejected"));
      $("status").textContent = t("error", { msg: e.message });
    }
  }

  function render() {
    const l = state.last;
    if (!l) return;
    const place = state.places.find(x => x.id === l.tid);
    const names = Object.fromEntries(l.sites.map(s => [s.id, s.name]));
    renderCards(l.set);
    renderEnergy(l.grid, l.pv, l.p);
    renderWaste(l.set);
    renderMap(l.sites, place && place.centroid ? place : null);
    renderOpportunities(l.pooling, l.symbiosis, names);
    const online = l.devices.filter(d => d.online).length;
    $("status").textContent = `${place ? place.name : l.tid} · ${t("sites", { n: l.sites.length })} · `
      + `${t("devices", { n: l.devices.length, online })}`;
  }

  // the cards shown as CSV: the same place, period and comparison (with its change columns)
  async function exportCsv() {
    const l = state.last || { tid: $("territory").value, kind: state.kind, p: period(), query: setQuery(period()) };
    const base = l.kind === "territory" ? "/v1/territories" : "/v1/sites";
    const r = await api(`${base}/${encodeURIComponent(l.tid)}/indicators?format=csv&${l.query}`);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob());
    const compare = new URLSearchParams(l.query).get("compare");
    a.download = `boucle-${l.tid}-${isoDay(l.p.from)}${compare ? "-vs-" + compare : ""}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  async function start() {
    takeKeyFromFragment();
    applyLanguage();
    if (!key()) return showLogin();
    try {
      state.places = await json("/v1/territories");
      state.kind = "territory";
      if (!state.places.length) {
        state.places = await json("/v1/sites");
        state.kind = "site";
      }
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin(t("key_rejected"));
      $("main").hidden = false;
      $("status").textContent = t("error", { msg: e.message });
      return;
    }
    const select = $("territory");
    select.textContent = "";
    $("scope-label").dataset.i18n = state.kind;
    $("scope-label").textContent = t(state.kind);
    for (const terr of state.places) {
      const o = document.createElement("option");
      o.value = terr.id;
      o.textContent = terr.name;
      select.appendChild(o);
    }
    const wanted = params.get(state.kind);
    if (wanted && state.places.some(x => x.id === wanted)) select.value = wanted;
    if (params.get("from") && params.get("to")) {
      $("preset").value = "custom";
      $("from").value = params.get("from");
      $("to").value = params.get("to");
    } else {
      applyPreset();
    }
    $("login").hidden = true;
    $("controls").hidden = false;
    $("main").hidden = false;
    if (state.places.length) await load();
  }

  // what the drill-down views (drilldown.js) use of this page
  window.BoucleApp = { json, t, number, unit, indicatorName, period, step, formatTime, lang: () => lang,
    scope: () => ({ kind: state.kind, id: $("territory").value }) };

  // --- events --------------------------------------------------------------------------
  $("lang").addEventListener("click", () => {
    lang = lang === "fr" ? "en" : "fr";
    localStorage.setItem("boucle.lang", lang);
    applyLanguage();
    render();
    if (window.BoucleDrilldown) window.BoucleDrilldown.refresh();
  });
  $("login-form").addEventListener("submit", e => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    start();
  });
  $("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); showLogin(); });
  $("key-swap-use").addEventListener("click", () => answerKeySwap(true));
  $("key-swap-keep").addEventListener("click", () => answerKeySwap(false));
  window.addEventListener("hashchange", () => { if (takeKeyFromFragment()) start(); });
  $("territory").addEventListener("change", load);
  $("compare").addEventListener("change", load);
  $("preset").addEventListener("change", () => { applyPreset(); load(); });
  for (const id of ["from", "to"]) $(id).addEventListener("change", () => { $("preset").value = "custom"; load(); });
  $("export").addEventListener("click", () => exportCsv().catch(e => { $("status").textContent = t("error", { msg: e.message }); }));
  $("controls").addEventListener("submit", e => e.preventDefault());

  start();
})();
