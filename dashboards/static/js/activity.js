/* Activity page, roll-ups: per team and per day of exposures — the numbers of `xp activity --format json`. */
"use strict";
(() => {
  const section = document.getElementById("activity-summary");
  if (!section) return;
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of ["since", "until"]) if (params.get(name)) query.set(name, params.get(name));
  const days = x => (x === null || x === undefined ? "—" : x.toFixed(1));

  function table(headers, rows) {
    const head = XP.el("tr", {}, headers.map((label, i) => XP.el("th", { class: i ? "num" : "" }, label)));
    return XP.el("table", { class: "data" }, XP.el("thead", {}, head), XP.el("tbody", {}, rows));
  }

  XP.api(`/api/activity?${query}`).then(d => {
    document.getElementById("activity-window").textContent = `${XP.time(d.since)} → ${XP.time(d.until)} UTC`;
    const teams = d.teams.map(t => XP.el("tr", { "data-team": t.team },
      XP.el("td", {}, t.team),
      XP.el("td", { class: "num", "data-field": "changes" }, String(t.changes)),
      XP.el("td", { class: "num", "data-field": "experiments_started" }, String(t.experiments_started)),
      XP.el("td", { class: "num", "data-field": "experiments_stopped" }, String(t.experiments_stopped)),
      XP.el("td", { class: "num", "data-field": "median_days_to_decision" }, days(t.median_days_to_decision)),
      XP.el("td", { class: "num", "data-field": "overrides_created" }, String(t.overrides_created)),
      XP.el("td", { class: "num", "data-field": "overrides_expired" }, String(t.overrides_expired))));
    document.getElementById("activity-teams").replaceChildren(teams.length
      ? table(["Team", "Changes", "Started", "Stopped", "Median days to decision", "Overrides created", "Overrides expired"], teams)
      : XP.el("p", { class: "empty" }, "No registry changes in this window."));
    const usage = d.usage.map(u => XP.el("tr", { "data-day": u.day, "data-source": u.source },
      XP.el("td", {}, `${u.day} · ${u.source}`),
      XP.el("td", { class: "num", "data-field": "exposures" }, String(u.exposures)),
      XP.el("td", { class: "num", "data-field": "experiments" }, String(u.experiments))));
    document.getElementById("activity-usage").replaceChildren(usage.length
      ? table(["Day · source", "Exposures", "Experiments"], usage)
      : XP.el("p", { class: "empty" }, "No exposures in this window."));
    const byKey = (d.usage_by_key || []).map(u => XP.el("tr", { "data-day": u.day, "data-kind": u.kind, "data-subject": u.subject },
      XP.el("td", {}, u.day), XP.el("td", {}, u.kind.replaceAll("_", " ")), XP.el("td", { class: "mono" }, u.subject),
      XP.el("td", { class: "num", "data-field": "count" }, String(u.count))));
    document.getElementById("activity-usage-by-key").replaceChildren(byKey.length
      ? table(["Day", "What", "Key id · endpoint or page", "Count"], byKey)
      : XP.el("p", { class: "empty" }, "No requests or page views counted in this window."));
    section.dataset.loaded = "true";
  }).catch(error => {
    document.getElementById("activity-window").textContent = `activity: ${error.message || error}`;
    section.dataset.loaded = "error";
  });
})();
