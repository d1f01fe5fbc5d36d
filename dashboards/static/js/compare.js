/* Comparison: two or more experiments on their shared metrics (fresh results, same code path as the CLI). */
"use strict";
(() => {
  const pick = document.getElementById("pick");
  const method = document.getElementById("method");
  const out = document.getElementById("comparison");
  const params = new URLSearchParams(location.search);
  const initial = (params.get("keys") || "").split(",").filter(Boolean);
  method.value = params.get("method") || "sequential";

  function table(name, rows, bayesian) {
    const head = XP.el("tr", {}, ["Experiment", "Variation", "Units", "Mean", "Lift", "Interval", bayesian ? "Chance to win" : "p-value"]
      .map((h, i) => XP.el("th", { class: i >= 2 ? "num" : "" }, h)));
    const body = rows.flatMap(row => row.variants.map((v, i) => {
      const dir = v.significant && v.estimate !== null ? ((v.estimate > 0) === row.higher_is_better ? "up" : "down") : "";
      return XP.el("tr", { "data-experiment": row.experiment, "data-variation": v.variation_id, class: i === 0 ? "group-start" : null },
        XP.el("td", { class: "mono" }, i === 0 ? XP.el("a", { href: `/experiments/${encodeURIComponent(row.experiment)}` }, row.experiment) : ""),
        XP.el("td", {}, v.name), XP.el("td", { class: "num" }, XP.int(v.units)), XP.el("td", { class: "num" }, XP.g(v.mean, 4)),
        XP.el("td", { class: `num ${dir}` }, i === 0 ? "control" : XP.signedPct(v.estimate)),
        XP.el("td", { class: "num muted" }, v.ci_low === null ? "" : `[${XP.signedPct(v.ci_low)}, ${XP.signedPct(v.ci_high)}]`),
        XP.el("td", { class: "num" }, i === 0 ? "" : bayesian ? XP.pct(v.chance_to_win) : XP.g(v.p_value, 3)));
    }));
    return XP.el("div", { class: "card", "data-metric": name }, XP.el("h2", {}, name),
      XP.el("table", { class: "data" }, XP.el("thead", {}, head), XP.el("tbody", {}, body)));
  }
  async function run(keys) {
    if (keys.length < 2) { out.replaceChildren(XP.el("p", { class: "muted" }, "Pick two or more experiments.")); return; }
    try {
      const data = await XP.api(`/api/compare?keys=${keys.map(encodeURIComponent).join(",")}&method=${method.value}`);
      XP.showError(null);
      if (!data.shared_metrics.length) { out.replaceChildren(XP.el("div", { class: "empty" }, "These experiments share no metric.")); return; }
      out.replaceChildren(...data.shared_metrics.map(name => table(name, data.rows.filter(r => r.metric === name), data.method === "bayesian")));
      document.body.dataset.loaded = "true";
    } catch (error) { XP.showError(error); }
  }
  document.getElementById("go").addEventListener("click", () => {
    const keys = [...pick.selectedOptions].map(o => o.value);
    const url = new URL(location.href); url.searchParams.set("keys", keys.join(",")); url.searchParams.set("method", method.value);
    history.replaceState(null, "", url);
    run(keys);
  });
  XP.api("/api/experiments").then(data => {
    pick.replaceChildren(...data.experiments.map(e => XP.el("option", { value: e.key, selected: initial.includes(e.key) }, e.key)));
    run(initial);
  }).catch(XP.showError);
})();
