/* Activity: the registry's change history, newest first. */
"use strict";
(() => {
  const filter = document.getElementById("filter");
  const body = document.querySelector("#changes tbody");
  const initial = new URLSearchParams(location.search).get("key") || "";
  filter.value = initial;
  let timer = null;
  async function load() {
    try {
      const d = await XP.api(`/api/audit?key=${encodeURIComponent(filter.value.trim())}`);
      XP.showError(null);
      if (!d.changes.length) { body.replaceChildren(XP.el("tr", {}, XP.el("td", { colspan: 7, class: "empty" }, "No registry changes recorded."))); }
      else body.replaceChildren(...d.changes.map(c => XP.el("tr", {},
        XP.el("td", { class: "num" }, XP.time(c.changed_at)), XP.el("td", {}, c.kind),
        XP.el("td", { class: "mono" }, c.kind === "experiment" ? XP.el("a", { href: `/experiments/${encodeURIComponent(c.key.split(":")[1])}` }, c.key) : c.key),
        XP.el("td", {}, XP.el("span", { class: `pill ${c.change === "deleted" ? "bad" : ""}` }, c.change)),
        XP.el("td", { class: "num" }, c.version ?? "—"), XP.el("td", {}, c.status ?? "—"), XP.el("td", {}, c.changed_by))));
      document.body.dataset.loaded = "true";
    } catch (error) { XP.showError(error); }
  }
  filter.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 250); });
  load();
})();
