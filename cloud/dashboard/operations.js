/* Boucle dashboard, operations: alerts (acknowledge), the collection round of a day, and
   exchanges proposed from symbiosis matches (propose, move on). It follows the page that
   app.js draws: whenever that is ready (body[data-state=ready]) it loads for the chosen
   territory and period; whenever the language changes it draws again. Strings: the `ops`
   table of each language in i18n.js. Everything is written as text, never as markup. */
"use strict";
(function () {
  const I18N = window.BOUCLE_I18N;
  const $ = id => document.getElementById(id);
  const DAY = 86400000;
  let data = null;

  const lang = () => (document.documentElement.lang === "fr" ? "fr" : "en");
  const t = (key, vars) => {
    let s = (I18N[lang()].ops || {})[key] ?? I18N.en.ops[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
    return s;
  };
  const streamName = s => (I18N[lang()].streams || {})[s] || s;
  const num = (v, d = 1) => (v === null || v === undefined ? "—"
    : new Intl.NumberFormat(lang(), { maximumFractionDigits: d }).format(v));
  const when = iso => (iso ? new Intl.DateTimeFormat(lang(), { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" })
    .format(new Date(iso)) + " UTC" : "—");
  const siteKey = () => $("scope-label").dataset.i18n === "site";

  async function call(path, method, body) {
    const r = await fetch(path, { method: method || "GET", headers: {
      "X-API-Key": sessionStorage.getItem("boucle.key") || "", ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined });
    if (!r.ok) {
      let msg = `${r.status}`;
      try { const p = await r.json(); msg = `${p.title}${p.detail ? " — " + p.detail : ""}`; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r.json();
  }

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function table(head, rows) {
    const tbl = el("table", "ops-table");
    const tr = el("tr");
    for (const h of head) tr.appendChild(el("th", "", h));
    tbl.appendChild(el("thead")).appendChild(tr);
    const body = tbl.appendChild(el("tbody"));
    for (const cells of rows) {
      const row = body.appendChild(el("tr"));
      for (const c of cells) {
        const td = row.appendChild(el("td"));
        if (c instanceof Node) td.appendChild(c); else td.textContent = c;
      }
    }
    return tbl;
  }

  function button(label, onClick, cls) {
    const b = el("button", cls || "", label);
    b.type = "button";
    b.addEventListener("click", () => {
      b.disabled = true;
      onClick().catch(e => { b.disabled = false; $("ops-status").textContent = t("error", { msg: e.message }); });
    });
    return b;
  }

  // --- period and scope, as the page shows them ------------------------------------------
  function period() {
    const from = $("from").value, to = $("to").value;
    const end = new Date(new Date(to + "T00:00:00Z").getTime() + DAY).toISOString().slice(0, 10);
    return { query: `from=${from}&to=${end}`, nextDay: end };
  }

  // --- loading --------------------------------------------------------------------------
  async function load() {
    const place = $("territory").value;
    if (!place) return;
    const id = encodeURIComponent(place);
    const p = period();
    if (!$("round-day").value || $("round-day").dataset.for !== place + p.nextDay) {
      $("round-day").value = p.nextDay;  // the round of the day after the period shown
      $("round-day").dataset.for = place + p.nextDay;
    }
    const territorial = !siteKey();
    const stream = $("round-stream").value;
    document.body.dataset.ops = "loading";
    try {
      const [alerts, rounds, exchanges, symbiosis] = await Promise.all([
        call(`/v1/alerts?${territorial ? "territory=" + id + "&" : ""}limit=200`),
        territorial ? call(`/v1/territories/${id}/rounds?day=${$("round-day").value}`
          + (stream ? `&stream=${encodeURIComponent(stream)}` : "")) : null,
        call(`/v1/exchanges?${territorial ? "territory=" + id + "&" : ""}limit=100`),
        territorial ? call(`/v1/territories/${id}/symbiosis?${p.query}`) : null,
      ]);
      data = { alerts: alerts.alerts, rounds, exchanges: exchanges.exchanges, symbiosis, query: p.query, id };
      $("ops-status").textContent = "";
      render();
      document.body.dataset.ops = "ready";
    } catch (e) {
      document.body.dataset.ops = "error";
      $("ops-status").textContent = t("error", { msg: e.message });
    }
  }

  // --- alerts ----------------------------------------------------------------------------
  function renderAlerts() {
    const box = $("alerts-list");
    box.textContent = "";
    const live = data.alerts.filter(a => a.status !== "resolved");
    const resolved = data.alerts.filter(a => a.status === "resolved").slice(0, 5);
    $("alerts-count").textContent = t("alerts_count", { open: live.filter(a => a.status === "open").length,
      acknowledged: live.filter(a => a.status === "acknowledged").length });
    if (!live.length && !resolved.length) return box.appendChild(el("p", "empty", t("no_alerts")));
    const rows = [...live, ...resolved].map(a => {
      const state = el("span", `alert-status status-${a.status}`, t(`status_${a.status}`));
      const action = a.status === "open"
        ? button(t("acknowledge"), async () => { await call(`/v1/alerts/${a.id}/acknowledge`, "POST"); await load(); })
        : el("span", "muted", a.status === "acknowledged" ? t("by", { who: a.acknowledged_by || "" })
          : when(a.resolved));
      const what = el("div", "", `${t("rule_" + a.rule)} · ${a.subject}`);
      what.appendChild(el("div", "alert-message muted", (a.messages || {})[lang()] || a.message));
      return [el("span", `severity severity-${a.severity}`, t(`severity_${a.severity}`)), what, when(a.opened), state, action];
    });
    const tbl = table([t("severity"), t("alert"), t("opened"), t("state"), ""], rows);
    [...live, ...resolved].forEach((a, i) => { tbl.tBodies[0].rows[i].dataset.alert = a.id; });
    box.appendChild(tbl);
  }

  // --- rounds ----------------------------------------------------------------------------
  function renderRounds() {
    const view = $("rounds-view");
    view.hidden = !data.rounds;
    if (!data.rounds) return;
    const r = data.rounds, box = $("rounds-list");
    box.textContent = "";
    const select = $("round-stream");
    if (!select.options.length || select.dataset.for !== data.id) {
      const kept = select.value;
      select.textContent = "";
      select.appendChild(el("option", "", t("all_streams"))).value = "";
      const streams = [...new Set([...r.collect, ...r.wait, ...r.unknown].map(b => b.stream))].sort();
      for (const s of streams) select.appendChild(el("option", "", streamName(s))).value = s;
      select.value = streams.includes(kept) ? kept : "";
      select.dataset.for = data.id;
    }
    box.appendChild(el("p", "round-summary", t("round_summary", { when: when(r.round), next: when(r.next_round),
      n: r.collect.length, wait: r.wait.length, threshold: num(r.threshold_pct, 0) })));
    if (!r.depot) box.appendChild(el("p", "empty", t("no_depot")));
    if (r.collect.length) {
      box.appendChild(el("h4", "", t("to_collect")));
      box.appendChild(table([t("order"), t("bin"), t("stream"), t("distance"), t("fill_at_round"), t("if_it_waits")],
        r.collect.map((b, i) => [String(i + 1), `${b.device} (${b.site})`, streamName(b.stream),
          b.distance_km === null ? "—" : `${num(b.distance_km, 2)} km`, `${num(b.fill_at_round_pct, 0)} %`,
          `${num(b.at_next_round_pct, 0)} %`])));
      box.lastChild.classList.add("round-collect");
    } else {
      box.appendChild(el("p", "empty", t("nothing_to_collect")));
    }
    if (r.wait.length) {
      box.appendChild(el("h4", "", t("can_wait")));
      box.appendChild(table([t("bin"), t("stream"), t("fill_at_round"), t("due")],
        r.wait.map(b => [`${b.device} (${b.site})`, streamName(b.stream), `${num(b.fill_at_round_pct, 0)} %`,
          when(b.reaches_threshold)])));
      box.lastChild.classList.add("round-wait");
    }
    if (r.unknown.length) box.appendChild(el("p", "empty", t("no_forecast", { bins: r.unknown.map(b => b.device).join(", ") })));
  }

  async function roundCsv() {
    const r = await fetch(`/v1/territories/${data.id}/rounds?format=csv&day=${$("round-day").value}`
      + ($("round-stream").value ? `&stream=${encodeURIComponent($("round-stream").value)}` : ""),
      { headers: { "X-API-Key": sessionStorage.getItem("boucle.key") || "" } });
    if (!r.ok) throw new Error(`${r.status}`);
    const a = el("a");
    a.href = URL.createObjectURL(await r.blob());
    a.download = `boucle-${data.id}-round-${$("round-day").value}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  // --- exchanges -------------------------------------------------------------------------
  const NEXT = { proposed: ["accepted", "declined", "cancelled"], accepted: ["done", "cancelled"] };

  function renderExchanges() {
    const matches = $("exchange-matches"), box = $("exchanges-list");
    matches.textContent = "";
    box.textContent = "";
    if (data.symbiosis) {
      matches.appendChild(el("h4", "", t("matches")));
      if (!data.symbiosis.matches.length) matches.appendChild(el("p", "empty", t("no_matches")));
      for (const m of data.symbiosis.matches.slice(0, 8)) {
        const line = el("p", "match");
        line.appendChild(el("span", "", t("match", { from: m.from_site, to: m.to_site, material: streamName(m.material),
          kg: num(m.matchable_kg_per_month, 0), km: num(m.distance_km, 1) })));
        line.appendChild(button(t("propose"), async () => {
          const start = new Date(Math.ceil(Date.now() / DAY) * DAY + 8 * 3600000);  // tomorrow 08:00 UTC
          await call(`/v1/exchanges?${data.query}`, "POST", { from_site: m.from_site, to_site: m.to_site,
            material: m.material, pickup_from: start.toISOString(),
            pickup_until: new Date(start.getTime() + 7 * DAY).toISOString(), kind: "gift" });
          await load();
        }, "quiet"));
        matches.appendChild(line);
      }
    }
    box.appendChild(el("h4", "", t("recorded")));
    if (!data.exchanges.length) return box.appendChild(el("p", "empty", t("no_exchanges")));
    const tbl = table([t("exchange"), t("kg"), t("pickup"), t("distance"), t("state"), ""], data.exchanges.map(x => {
      const actions = el("span", "actions");
      for (const next of NEXT[x.status] || []) {
        actions.appendChild(button(t(`do_${next}`), async () => {
          await call(`/v1/exchanges/${x.id}/status`, "POST", { status: next });
          await load();
        }, next === "accepted" || next === "done" ? "" : "quiet"));
      }
      return [`${x.from_site} → ${x.to_site} · ${streamName(x.material)}`, num(x.kg, 0),
        `${when(x.pickup_from)} – ${when(x.pickup_until)}`, `${num(x.distance_km, 1)} km`,
        el("span", `exchange-status status-${x.status}`, t(`ex_${x.status}`)), actions];
    }));
    data.exchanges.forEach((x, i) => { tbl.tBodies[0].rows[i].dataset.exchange = x.id; });
    box.appendChild(tbl);
  }

  function render() {
    for (const node of document.querySelectorAll("[data-i18n-ops]")) node.textContent = t(node.dataset.i18nOps);
    if (!data) return;
    renderAlerts();
    renderRounds();
    renderExchanges();
  }

  // --- following the page -------------------------------------------------------------------
  new MutationObserver(() => { if (document.body.dataset.state === "ready") load(); })
    .observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
  new MutationObserver(render).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  $("round-day").addEventListener("change", load);
  $("round-stream").addEventListener("change", load);
  $("round-csv").addEventListener("click", () => roundCsv().catch(e => { $("ops-status").textContent = t("error", { msg: e.message }); }));
  render();
})();
