/* Experiments list: status, start, units so far, primary-metric headline, SRM and data-quality badges. */
"use strict";
(() => {
  const search = document.getElementById("search");
  const status = document.getElementById("status");
  const compare = document.getElementById("compare");
  const body = document.querySelector("#experiments tbody");
  const selected = new Set();
  let all = [];

  function headline(h) {
    if (!h) return XP.el("span", { class: "muted" }, "no snapshot yet");
    const cls = h.significant ? (h.estimate > 0 ? "up" : "down") : "";
    return XP.el("span", {}, XP.el("span", { class: "muted" }, `${h.metric} · ${h.variation} `),
      XP.el("span", { class: `num ${cls}` }, XP.signedPct(h.estimate)),
      h.ci_low !== null ? XP.el("span", { class: "muted small" }, ` [${XP.signedPct(h.ci_low)}, ${XP.signedPct(h.ci_high)}]`) : null);
  }
  function srmBadge(e) {
    if (e.srm_p_value === null) return XP.el("span", { class: "muted" }, "—");
    return XP.el("span", { class: `pill ${e.srm_flagged ? "bad" : "good"}`, title: `SRM p = ${XP.g(e.srm_p_value, 3)}` },
      e.srm_flagged ? "SRM" : "ok");
  }
  function dqBadge(e) {
    if (e.open_alerts === null) return XP.el("span", { class: "muted" }, "no checks yet");
    return e.open_alerts ? XP.el("span", { class: "pill bad" }, `${e.open_alerts} alert${e.open_alerts > 1 ? "s" : ""}`) :
      XP.el("span", { class: "pill good" }, "ok");
  }
  function render() {
    const needle = search.value.trim().toLowerCase();
    const rows = all.filter(e => (!needle || e.key.toLowerCase().includes(needle) || e.name.toLowerCase().includes(needle))
      && (!status.value || e.status === status.value));
    if (!rows.length) {
      body.replaceChildren(XP.el("tr", {}, XP.el("td", { colspan: 9, class: "empty" },
        all.length ? "No experiment matches." : "No experiments yet: `xp experiments apply examples/experiments.yaml`.")));
      return;
    }
    body.replaceChildren(...rows.map(e => {
      const box = XP.el("input", { type: "checkbox", "aria-label": `select ${e.key}`, checked: selected.has(e.key) });
      box.addEventListener("change", () => { box.checked ? selected.add(e.key) : selected.delete(e.key); compare.disabled = selected.size < 2; });
      const link = XP.el("a", { href: `/experiments/${encodeURIComponent(e.key)}` }, e.name);
      return XP.el("tr", { "data-key": e.key },
        XP.el("td", { class: "check" }, box),
        XP.el("td", {}, link, XP.el("div", { class: "muted small mono" }, e.key)),
        XP.el("td", {}, XP.el("span", { class: `pill ${e.status}` }, e.status)),
        XP.el("td", { class: "num" }, e.start ? e.start.slice(0, 10) : "—"),
        XP.el("td", { class: "num", "data-field": "units" }, XP.int(e.units)),
        XP.el("td", {}, headline(e.headline)),
        XP.el("td", {}, srmBadge(e)),
        XP.el("td", {}, dqBadge(e)),
        XP.el("td", {}, XP.el("a", { href: `/health?experiment=${encodeURIComponent(e.key)}` }, "health")));
    }));
  }
  compare.addEventListener("click", () => { location.href = `/compare?keys=${[...selected].join(",")}`; });
  search.addEventListener("input", render);
  status.addEventListener("change", render);
  XP.api("/api/experiments").then(data => {
    all = data.experiments;
    status.append(...data.statuses.map(s => XP.el("option", { value: s }, s)));
    render();
    document.body.dataset.loaded = "true";
  }).catch(XP.showError);
})();
