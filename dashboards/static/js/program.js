/* Program page: the numbers of `xp program --format json` (jobs/program.py), per experiment, team, metric. */
"use strict";
(() => {
  const section = document.getElementById("program");
  if (!section) return;
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of ["team", "metric", "experiments"]) {
    const value = params.get(name);
    if (value) { query.set(name, value); document.getElementById(`program-${name}`).value = value; }
  }
  const lift = x => XP.signedPct(x, 2);
  const days = x => (x === null || x === undefined ? "—" : x.toFixed(1));
  const p = x => XP.g(x, 3);

  function table(headers, rows, textColumns = 1) {
    const head = XP.el("tr", {}, headers.map((label, i) => XP.el("th", { class: i >= textColumns ? "num" : "" }, label)));
    return XP.el("table", { class: "data" }, XP.el("thead", {}, head), XP.el("tbody", {}, rows));
  }
  const cell = (field, text) => XP.el("td", { class: "num", "data-field": field }, text);

  function groups(list, field) {
    return list.map(g => XP.el("tr", { [`data-${field}`]: g[field] },
      XP.el("td", {}, g[field]),
      cell("experiments", String(g.experiments)),
      cell("ship", String(g.ship)),
      cell("rollback", String(g.rollback)),
      cell("inconclusive", String(g.inconclusive)),
      cell("undecided", String(g.undecided)),
      cell("win_rate", XP.pct(g.win_rate, 0)),
      cell("median_lift", lift(g.lift.median)),
      cell("lift_iqr", g.lift.count ? `${lift(g.lift.p25)} … ${lift(g.lift.p75)}` : "—")));
  }
  const groupHeaders = label => [label, "Experiments", "Ship", "Rollback", "Inconclusive", "Undecided", "Win rate", "Median lift", "Lift, quartiles"];

  function meta(m, count) {
    if (!m) return XP.el("p", { class: "empty", id: "program-meta-note" },
      count ? "The experiments' primary metrics differ: choose one metric." : "Nothing to pool.");
    if (m.error) return XP.el("p", { class: "empty", id: "program-meta-note" }, `${m.metric}: no pooled estimate (${m.error})`);
    const row = (label, e, field) => XP.el("tr", { "data-model": field },
      XP.el("td", {}, label),
      cell("estimate", lift(e.estimate)),
      cell("interval", `${lift(e.ci_low)} … ${lift(e.ci_high)}`),
      cell("p_value", p(e.p_value)));
    const rows = [row("Fixed effect", m.fixed_effect, "fixed")];
    if (m.q_df) rows.push(row("Random effects (DerSimonian–Laird)", m.random_effects, "random"));
    const heterogeneity = m.q_df
      ? XP.el("p", { id: "program-heterogeneity" },
          XP.el("span", { "data-field": "q" }, `Q = ${m.q.toFixed(3)}`), ` (df ${m.q_df}, p = ${p(m.q_p_value)}) · `,
          XP.el("span", { "data-field": "i_squared" }, `I² = ${(m.i_squared * 100).toFixed(1)}%`), ` · τ² = ${p(m.tau_squared)}`)
      : XP.el("p", { class: "muted" }, "One experiment: no heterogeneity to measure.");
    const left = m.excluded.length
      ? XP.el("p", { class: "muted small" }, "Left out: " + m.excluded.map(x => `${x.experiment} (${x.reason})`).join(", "))
      : null;
    return XP.el("div", { id: "program-meta-result", "data-metric": m.metric },
      XP.el("p", {}, `${m.metric}, ${m.experiments} experiments: ${m.included.join(", ")}`),
      table(["Model", "Pooled lift", "95% interval", "p-value"], rows), heterogeneity, left);
  }

  XP.api(`/api/program?${query}`).then(d => {
    const filters = Object.entries(d.filters).filter(([, v]) => v).map(([k, v]) => `${k}: ${v}`).join(" · ");
    document.getElementById("program-filter-note").textContent = filters || "all finished experiments";
    const rows = d.experiments.map(e => XP.el("tr", { "data-experiment": e.experiment },
      XP.el("td", {}, XP.el("a", { href: `/experiments/${encodeURIComponent(e.experiment)}` }, e.experiment)),
      XP.el("td", { "data-field": "team" }, e.team),
      XP.el("td", { "data-field": "decision" }, e.decision),
      XP.el("td", { "data-field": "metric" }, e.metric || "—"),
      cell("lift", lift(e.lift)),
      cell("interval", e.lift === null ? (e.error || "—") : `${lift(e.ci_low)} … ${lift(e.ci_high)}`),
      cell("duration_days", days(e.duration_days)),
      cell("units", XP.int(e.units))));
    document.getElementById("program-experiments-table").replaceChildren(rows.length
      ? table(["Experiment", "Team", "Decision", "Metric", "Lift", "Interval", "Days", "Units"], rows, 4)
      : XP.el("p", { class: "empty" }, "No finished experiments (status: stopped) match."));
    document.getElementById("program-teams").replaceChildren(table(groupHeaders("Team"), groups(d.teams, "team")));
    document.getElementById("program-metrics").replaceChildren(table(groupHeaders("Metric"), groups(d.metrics, "metric")));
    document.getElementById("program-meta").replaceChildren(meta(d.meta_analysis, d.experiments.length));
    section.dataset.loaded = "true";
  }).catch(error => {
    XP.showError(error);
    section.dataset.loaded = "error";
  });
})();
