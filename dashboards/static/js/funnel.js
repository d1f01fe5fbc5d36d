/* Funnel section of the results page and of the realtime health page: overall conversion per step and
   variation (bars), and a table with units, conversion from the previous step, drop-off, overall conversion,
   lift against control with its interval and p-value — the numbers of `xp funnel KEY --format json`,
   formatted as its table prints them. On the health page (data-realtime) it shows the units first exposed
   in the last hour or day (`xp funnel KEY --since NOW-1h`), polled at the page's refresh. */
"use strict";
(() => {
  const section = document.getElementById("funnel");
  if (!section) return;
  const realtime = section.dataset.realtime !== undefined;
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of ["since", "until", "steps", "window", "ordered"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }

  function draw(funnel) {
    const level = XP.pct(1 - funnel.alpha, 0);
    document.getElementById("funnel-note").textContent =
      `${funnel.steps.join(" → ")} · within ${XP.g(funnel.window_hours, 6)} h of exposure, ` +
      `${funnel.ordered ? "in order" : "any order"} · ${funnel.method}` +
      (funnel.correction !== "none" ? ` · ${funnel.correction} correction` : "");
    XP.chart(document.getElementById("funnel-chart"), {
      type: "bar",
      data: {
        labels: funnel.steps,
        datasets: funnel.variations.map((variation, i) => ({
          label: variation.name,
          data: variation.steps.map(step => step.conversion_overall === null ? null : step.conversion_overall * 100),
          backgroundColor: XP.palette[i % XP.palette.length],
        })),
      },
      options: {
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, max: 100, title: { display: true, text: "% of exposed units" } } },
      },
    });
    const head = XP.el("tr", {}, ["Variation", "Step", "Units", "From previous", "Drop-off", "Overall", "Lift",
      `${level} interval`, "p-value"].map((label, i) => XP.el("th", { class: i >= 2 ? "num" : "" }, label)));
    const rows = funnel.variations.flatMap(variation => variation.steps.map(step => {
      const p = step.p_value_adjusted !== null ? step.p_value_adjusted : step.p_value;
      const dropOff = step.conversion_from_previous === null ? null : 1 - step.conversion_from_previous;
      const lift = step.lift !== null ? XP.signedPct(step.lift) : (step.error ? step.error.replaceAll("_", " ") : "");
      const interval = step.ci_low !== null && step.ci_high !== null
        ? `[${XP.signedPct(step.ci_low)}, ${XP.signedPct(step.ci_high)}]` : "";
      return XP.el("tr", { "data-variation": variation.variation_id, "data-step": step.step,
        class: step.significant ? "significant" : "" },
        XP.el("td", {}, variation.name),
        XP.el("td", { class: "mono" }, step.step),
        XP.el("td", { class: "num", "data-field": "units" }, String(step.units)),
        XP.el("td", { class: "num", "data-field": "from_previous" }, XP.pct(step.conversion_from_previous)),
        XP.el("td", { class: "num", "data-field": "drop_off" }, XP.pct(dropOff)),
        XP.el("td", { class: "num", "data-field": "overall" }, XP.pct(step.conversion_overall)),
        XP.el("td", { class: "num", "data-field": "lift" }, lift),
        XP.el("td", { class: "num", "data-field": "interval" }, interval),
        XP.el("td", { class: "num", "data-field": "p_value" }, XP.g(p, 3)));
    }));
    document.getElementById("funnel-table").replaceChildren(
      XP.el("table", { class: "data" }, XP.el("thead", {}, head), XP.el("tbody", {}, rows)));
  }

  function show(answer) {
    const chartBox = document.getElementById("funnel-chart").parentElement;
    if (answer.funnel === null) {
      document.getElementById("funnel-note").textContent = answer.pending ? "computing the funnel…" : answer.reason;
      chartBox.hidden = !answer.pending;
      if (!answer.pending) document.getElementById("funnel-table").replaceChildren();
      return !answer.pending;
    }
    chartBox.hidden = false;
    draw(answer.funnel);
    const age = answer.shown ? answer.shown.age_seconds : 0;
    if (realtime) document.getElementById("funnel-note").prepend(`units first exposed since ${XP.time(answer.funnel.since)} UTC · `);
    if (age >= 1) document.getElementById("funnel-note").append(` · computed ${Math.round(age)} s ago`);
    if (realtime) section.dataset.window = answer.window;
    return true;
  }
  function failed(error) {
    document.getElementById("funnel-note").textContent = `funnel: ${error.message || error}`;
    section.dataset.loaded = "error";
  }

  if (!realtime) {
    const key = document.getElementById("results-root").dataset.experiment;
    XP.api(`/api/experiments/${encodeURIComponent(key)}/funnel?${query}`).then(answer => {
      show(answer);
      section.dataset.loaded = "true";
    }).catch(failed);
    return;
  }
  // Health page: the experiment is the page's (health.js sets data-experiment); the window is ours.
  const choice = document.getElementById("funnel-window");
  const refreshSeconds = Number(document.body.dataset.refreshSeconds) || 5;
  let timer = null;
  async function poll() {
    clearTimeout(timer);
    const key = section.dataset.experiment;
    let wait = refreshSeconds;
    if (key) {
      try {
        const answer = await XP.api(`/api/experiments/${encodeURIComponent(key)}/funnel/realtime?window=${choice.value}`);
        if (key === section.dataset.experiment) {
          if (show(answer)) section.dataset.loaded = "true";
          else wait = 1;
        }
      } catch (error) { failed(error); }
    } else wait = 1;
    timer = setTimeout(poll, wait * 1000);
  }
  choice.addEventListener("change", () => { section.dataset.loaded = ""; poll(); });
  new MutationObserver(() => { section.dataset.loaded = ""; poll(); })
    .observe(section, { attributes: true, attributeFilter: ["data-experiment"] });
  poll();
})();
