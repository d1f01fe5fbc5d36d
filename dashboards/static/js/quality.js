/* Data quality: open alerts, latest outcome and history per check, link to the latest report. */
"use strict";
(() => {
  function fmt(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") return XP.g(value, 4);
    if (Array.isArray(value)) return value.map(fmt).join(", ");
    if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k.replaceAll("_", " ")} ${fmt(v)}`).join(" · ");
    return String(value);
  }
  XP.api("/api/quality").then(d => {
    const alerts = document.getElementById("alerts"), checks = document.getElementById("checks");
    if (d.report_url) { const link = document.getElementById("report-link"); link.href = d.report_url; link.hidden = false; }
    if (!d.available) {
      const text = "No data-quality results yet: the quality checks have not run (xp.dq_results is empty or missing).";
      alerts.replaceChildren(XP.el("div", { class: "empty" }, "No alerts recorded."));
      checks.replaceChildren(XP.el("div", { class: "empty" }, text));
      document.body.dataset.loaded = "true";
      return;
    }
    if (!d.open_alerts || !d.open_alerts.length) alerts.replaceChildren(XP.el("div", { class: "empty" }, "No open alerts."));
    else alerts.replaceChildren(XP.el("table", { class: "data" },
      XP.el("thead", {}, XP.el("tr", {}, ["Check", "Experiment / table", "Detail", "Firing since"].map(h => XP.el("th", {}, h)))),
      XP.el("tbody", {}, d.open_alerts.map(a => XP.el("tr", {}, XP.el("td", {}, XP.el("span", { class: "pill bad" }, a.check)),
        XP.el("td", { class: "mono" }, a.experiment || a.table_name || "—"), XP.el("td", {}, a.detail), XP.el("td", { class: "num" }, XP.time(a.since)))))));
    if (!d.checks.length) { checks.replaceChildren(XP.el("div", { class: "empty" }, `No check ran in the last ${d.history_days} days.`)); }
    else checks.replaceChildren(XP.el("table", { class: "data" },
      XP.el("thead", {}, XP.el("tr", {}, ["Check", "Target", "Latest", "Observed", "Threshold", "Failures", "History (newest right)", "Last run"].map((h, i) => XP.el("th", { class: i === 5 ? "num" : "" }, h)))),
      XP.el("tbody", {}, d.checks.map(c => {
        const ok = c.latest.success;
        const pill = XP.el("span", { class: `pill ${ok ? "good" : c.latest.severity === "warning" ? "warn" : "bad"}` }, ok ? "pass" : c.latest.severity);
        const history = XP.el("span", { class: "history" }, [...c.history].reverse().map(h =>
          XP.el("i", { class: h.success ? "" : h.severity === "warning" ? "warnfail" : "fail", title: `${XP.time(h.run_at)} ${h.success ? "pass" : "fail"}` })));
        return XP.el("tr", { "data-check": c.check }, XP.el("td", {}, c.check), XP.el("td", { class: "mono" }, c.target || "—"), XP.el("td", {}, pill),
          XP.el("td", { class: "obs" }, fmt(c.latest.observed)), XP.el("td", { class: "obs muted" }, fmt(c.latest.threshold)),
          XP.el("td", { class: "num" }, `${c.failures} / ${c.runs}`), XP.el("td", {}, history), XP.el("td", { class: "num" }, XP.time(c.latest.run_at)));
      }))));
    document.body.dataset.loaded = "true";
  }).catch(XP.showError);
})();
