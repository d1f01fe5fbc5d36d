/* Planning section of the experiment's page: units and days each method needs for a minimum detectable
   effect, from the metric's history — the numbers of `xp plan KEY --format json`. */
"use strict";
(() => {
  const section = document.getElementById("plan");
  if (!section) return;
  const key = document.getElementById("results-root").dataset.experiment;
  const params = new URLSearchParams(location.search);
  const note = document.getElementById("plan-note");

  function draw(plan) {
    const size = plan.relative ? XP.pct(plan.mde) + " relative" : XP.g(plan.mde, 6) + " absolute";
    note.textContent = `minimum detectable effect ${size} · α = ${XP.g(plan.alpha, 3)} · power ` +
      `${XP.pct(plan.power, 0)} · ${plan.variations} variations · ${plan.planned_looks} planned looks · ` +
      `history ${XP.g(plan.history.days, 4)} days`;
    const head = XP.el("tr", {}, ["Metric", "Method", "Units per variation", "Total units", "Days", "Power"]
      .map((label, i) => XP.el("th", { class: i >= 2 ? "num" : "" }, label)));
    const rows = plan.metrics.flatMap(metric => metric.error
      ? [XP.el("tr", { "data-metric": metric.metric },
          XP.el("td", { class: "mono" }, metric.metric), XP.el("td", { colspan: "5", "data-field": "error" }, metric.error))]
      : metric.methods.map(row => XP.el("tr", { "data-metric": metric.metric, "data-method": row.method },
          XP.el("td", { class: "mono" }, metric.metric),
          XP.el("td", {}, row.method),
          XP.el("td", { class: "num", "data-field": "units_per_variation" }, XP.int(row.units_per_variation)),
          XP.el("td", { class: "num", "data-field": "total_units" }, XP.int(row.total_units)),
          XP.el("td", { class: "num", "data-field": "days" }, row.days === null ? "—" : String(row.days)),
          XP.el("td", { class: "num", "data-field": "power" }, row.power.toFixed(3)))));
    document.getElementById("plan-table").replaceChildren(
      XP.el("table", { class: "data" }, XP.el("thead", {}, head), XP.el("tbody", {}, rows)));
    document.getElementById("plan-yaml").textContent = plan.yaml
      ? `paste under analysis: (${plan.method}):  ${plan.yaml}` : "";
  }

  function load(mde) {
    const query = new URLSearchParams({ mde: String(mde) });
    if (params.get("until")) query.set("until", params.get("until"));
    section.dataset.loaded = "";
    XP.api(`/api/experiments/${encodeURIComponent(key)}/plan?${query}`).then(answer => {
      draw(answer.plan);
      section.dataset.loaded = "true";
    }).catch(error => {
      note.textContent = `plan: ${error.message || error}`;
      section.dataset.loaded = "error";
    });
  }

  const input = document.getElementById("plan-mde");
  document.getElementById("plan-form").addEventListener("submit", event => {
    event.preventDefault();
    load(Number(input.value) / 100);
  });
  load(Number(input.value) / 100);
})();
