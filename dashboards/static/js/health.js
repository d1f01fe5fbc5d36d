/* Realtime health: refreshes every few seconds; charts update in place. */
"use strict";
(() => {
  const select = document.getElementById("experiment");
  const refreshSeconds = Number(document.body.dataset.refreshSeconds) || 5;
  let current = select.dataset.initial || new URLSearchParams(location.search).get("experiment") || "";

  function lineOptions(yTitle, extra = {}) {
    return { maintainAspectRatio: false, plugins: { legend: { position: "bottom", labels: { boxWidth: 10 } } },
      scales: { x: { grid: { display: false }, ticks: { maxTicksLimit: 10 } }, y: { beginAtZero: true, title: { display: !!yTitle, text: yTitle }, grid: { color: "#eef1f4" }, ...extra } } };
  }
  function setTile(id, text, cls = "") {
    const node = document.getElementById(id);
    node.textContent = text;
    node.className = `value ${cls}`;
  }

  function render(d) {
    const labels = d.minutes.map(XP.minuteLabel);
    document.getElementById("experiment-name").textContent = d.experiment_name || d.experiment || "no experiment";
    document.getElementById("updated").textContent = XP.time(d.now).slice(11) + " UTC";
    document.getElementById("results-link").href = `/experiments/${encodeURIComponent(d.experiment || "")}`;
    const funnel = document.getElementById("funnel");
    if (funnel && funnel.dataset.experiment !== (d.experiment || "")) funnel.dataset.experiment = d.experiment || "";
    setTile("units", XP.int(d.units ?? 0));
    const progress = d.progress || {};
    const share = progress.planned ? Math.min(progress.units / progress.planned, 1) : 0;
    document.getElementById("progress-bar").style.width = `${share * 100}%`;
    document.getElementById("progress-note").textContent = progress.planned ?
      `${XP.pct(progress.units / progress.planned, 0)} of ${XP.int(progress.planned)} planned` : (progress.source || "");
    document.getElementById("progress-note").title = progress.source || "";
    setTile("srm", XP.g(d.srm_p_value ?? null, 3), d.srm_flagged ? "bad" : "");
    document.getElementById("srm-note").textContent = d.srm_flagged ? "mismatch: check assignment and logging" : "p < 0.001 flags a mismatch";
    setTile("ingest-rate", XP.int(d.ingest_last_60s.events));
    document.getElementById("ingest-note").textContent = `exposures ${XP.int(d.ingest_last_60s.exposures)} · last 60 s, all experiments`;
    setTile("dead-rate", d.dead_letter_rate === null ? "—" : XP.pct(d.dead_letter_rate, 2), d.dead_letter_rate > 0.01 ? "bad" : "");
    const reasons = Object.entries(d.dead_letters_by_reason);
    document.getElementById("dead-note").textContent = reasons.length ? `all traffic: ${reasons.map(([r, n]) => `${r} ${XP.int(n)}`).join(" · ")}` : "none in the window (all traffic)";
    const lag = d.consumer_lag;
    setTile("lag", lag.status === "ok" ? XP.int(lag.total) : "unknown");
    const lagNote = document.getElementById("lag-note");
    lagNote.textContent = lag.status === "ok" ? "messages behind (stream group)" : lag.reason.split(":")[0];
    lagNote.title = lag.reason;
    setTile("alerts-count", d.open_alerts === null ? "—" : String(d.open_alerts.length), d.open_alerts && d.open_alerts.length ? "bad" : "");

    const exposureSets = (d.exposures_per_minute || []).map((s, i) => ({ label: s.name, data: s.values,
      borderColor: XP.palette[i % XP.palette.length], backgroundColor: XP.palette[i % XP.palette.length], borderWidth: 1.5, pointRadius: 0, tension: 0.2 }));
    XP.chart(document.getElementById("exposures-chart"), { type: "line", data: { labels, datasets: exposureSets }, options: lineOptions("exposures / min") });
    XP.chart(document.getElementById("ingest-chart"), { type: "line", data: { labels, datasets: [
      { label: "events", data: d.ingest_per_minute.events, borderColor: XP.palette[1], backgroundColor: XP.palette[1], borderWidth: 1.5, pointRadius: 0 },
      { label: "exposures", data: d.ingest_per_minute.exposures, borderColor: XP.palette[0], backgroundColor: XP.palette[0], borderWidth: 1.5, pointRadius: 0 }] },
      options: lineOptions("records / min") });
    const deadSets = Object.entries(d.dead_letters_per_minute).map(([reason, values], i) => ({ label: reason, data: values,
      backgroundColor: ["#cf222e", "#bc4c00", "#9a6700", "#8250df", "#6e7781"][i % 5] }));
    const deadOptions = lineOptions("dead letters / min");
    deadOptions.scales.x.stacked = true; deadOptions.scales.y.stacked = true;
    XP.chart(document.getElementById("dead-chart"), { type: "bar", data: { labels, datasets: deadSets }, options: deadOptions });
    const srm = d.srm_over_time || [];
    const srmOptions = lineOptions("p-value", { type: "logarithmic", beginAtZero: false, min: 1e-6, max: 1,
      ticks: { callback: value => [1, 0.1, 0.01, 0.001, 1e-4, 1e-5, 1e-6].includes(value) ? XP.g(value, 1) : "" } });
    XP.chart(document.getElementById("srm-chart"), { type: "line", data: { labels: srm.map(p => XP.time(p.computed_at).slice(5, 16)), datasets: [
      { label: "SRM p-value", data: srm.map(p => p.srm_p_value === null ? null : Math.max(p.srm_p_value, 1e-6)), borderColor: XP.palette[1], backgroundColor: XP.palette[1], borderWidth: 1.5, pointRadius: 2 },
      { label: "threshold 0.001", data: srm.map(() => d.srm_threshold), borderColor: "#cf222e", borderDash: [4, 4], borderWidth: 1, pointRadius: 0 }] },
      options: srmOptions });

    const units = d.units_by_variation || [];
    const total = units.reduce((a, u) => a + u.units, 0);
    const weights = Object.fromEntries((d.weights || []).map((w, i) => [i, w]));
    document.querySelector("#units-table tbody").replaceChildren(...units.map(u => XP.el("tr", { "data-variation": u.variation_id },
      XP.el("td", {}, u.name), XP.el("td", { class: "num", "data-field": "units" }, XP.int(u.units)),
      XP.el("td", { class: "num" }, total ? XP.pct(u.units / total) : "—"),
      XP.el("td", { class: "num" }, weights[u.variation_id] !== undefined ? XP.pct(weights[u.variation_id]) : "—"))));
    const alerts = d.experiment_alerts || d.open_alerts;
    const box = document.getElementById("alerts");
    if (alerts === null || alerts === undefined) box.replaceChildren(XP.el("div", { class: "empty" }, "No data-quality checks have run yet (xp.alerts is empty or missing)."));
    else if (!alerts.length) box.replaceChildren(XP.el("div", { class: "empty" }, "No open alerts."));
    else box.replaceChildren(XP.el("table", { class: "data" }, XP.el("thead", {}, XP.el("tr", {}, ["Check", "Experiment / table", "Detail", "Firing since"].map(h => XP.el("th", {}, h)))),
      XP.el("tbody", {}, alerts.map(a => XP.el("tr", {}, XP.el("td", {}, XP.el("span", { class: "pill bad" }, a.check)), XP.el("td", { class: "mono" }, a.experiment || a.table_name || "—"),
        XP.el("td", {}, a.detail), XP.el("td", { class: "num" }, XP.time(a.since)))))));
  }

  async function refresh() {
    try {
      const d = await XP.api(`/api/health${current ? `?experiment=${encodeURIComponent(current)}` : ""}`);
      XP.showError(null);
      if (!current && d.experiment) { current = d.experiment; select.value = current; }
      render(d);
      document.body.dataset.loaded = "true";
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    } catch (error) {
      XP.showError(error);
    } finally {
      setTimeout(refresh, refreshSeconds * 1000);
    }
  }
  select.addEventListener("change", () => {
    current = select.value;
    const url = new URL(location.href); url.searchParams.set("experiment", current); history.replaceState(null, "", url);
  });
  XP.api("/api/experiments").then(data => {
    select.replaceChildren(...data.experiments.map(e => XP.el("option", { value: e.key, selected: e.key === current }, e.name)));
  }).catch(XP.showError);
  refresh();
})();
