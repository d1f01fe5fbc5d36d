/* Results page: per metric and variation — units, mean, lift with its interval bar, p-value / chance to win. */
"use strict";
(() => {
  const root = document.getElementById("results-root");
  const key = root.dataset.experiment;
  const methodSelect = document.getElementById("method");
  const params = new URLSearchParams(location.search);
  if (params.get("method")) methodSelect.value = params.get("method");

  function direction(variant, metric) {
    if (!variant.significant || variant.estimate === null) return "";
    return (variant.estimate > 0) === metric.higher_is_better ? "good" : "bad";
  }

  function intervalCell(variant, metric, scale) {
    if (variant.ci_low === null || variant.ci_high === null) {
      return XP.el("td", { class: "interval" }, XP.el("span", { class: "ci-text" }, variant.estimate === null ? "" : "—"));
    }
    const position = x => `${((x + scale) / (2 * scale)) * 100}%`;
    const low = Math.max(variant.ci_low, -scale), high = Math.min(variant.ci_high, scale);
    const bar = XP.el("div", { class: `ci ${direction(variant, metric)}` },
      XP.el("div", { class: "zero", style: `left:${position(0)}` }),
      XP.el("div", { class: "bar", style: `left:${position(low)};width:calc(${position(high)} - ${position(low)})` }),
      variant.estimate === null ? null : XP.el("div", { class: "dot", style: `left:${position(Math.max(Math.min(variant.estimate, scale), -scale))}` }));
    const text = `[${XP.signedPct(variant.ci_low)}, ${XP.signedPct(variant.ci_high)}]`;
    return XP.el("td", { class: "interval", "data-field": "interval" }, bar,
      XP.el("div", { class: "ci-text num", "data-field": "interval-text" }, text));
  }

  function metricTable(metric, bayesian, level) {
    const finite = metric.variants.flatMap(v => [v.ci_low, v.ci_high]).filter(x => x !== null && isFinite(x));
    const scale = Math.max(0.01, ...finite.map(Math.abs)) * 1.1;
    const last = bayesian ? "Chance to win" : "p-value";
    const head = XP.el("tr", {}, ["Variation", "Units", "Mean", "Lift", `${level} interval`, last, ""].map((label, i) =>
      XP.el("th", { class: i >= 1 && i <= 5 && i !== 4 ? "num" : "" }, label)));
    const rows = metric.variants.map((variant, index) => {
      const dir = direction(variant, metric);
      const lift = index === 0 ? XP.el("span", { class: "muted" }, "control") :
        XP.el("span", { class: dir === "good" ? "up" : dir === "bad" ? "down" : "" }, XP.signedPct(variant.estimate));
      const note = variant.error ? XP.el("span", { class: "pill warn" }, variant.error.replaceAll("_", " ")) :
        variant.significant ? XP.el("span", { class: `pill ${dir}` }, dir === "bad" ? "significant · worse" : "significant · better") : "";
      const cells = [
        XP.el("td", {}, variant.name, XP.el("div", { class: "muted small mono" }, variant.key)),
        XP.el("td", { class: "num", "data-field": "units" }, XP.int(variant.units)),
        XP.el("td", { class: "num", "data-field": "mean" }, XP.g(variant.mean, 4)),
        XP.el("td", { class: "num lift", "data-field": "lift" }, lift),
        index === 0 ? XP.el("td", { class: "interval" }) : intervalCell(variant, metric, scale),
        XP.el("td", { class: "num", "data-field": bayesian ? "chance_to_win" : "p_value" },
          index === 0 ? "" : bayesian ? XP.pct(variant.chance_to_win) : XP.g(variant.p_value, 3)),
        XP.el("td", {}, note),
      ];
      return XP.el("tr", { "data-variation": variant.variation_id }, cells);
    });
    const better = metric.higher_is_better ? "higher is better" : "lower is better";
    // a quantile metric (decision 0083): "p90 per event"; its mean column is the quantile
    const kind = typeof metric.quantile === "number"
      ? `p${+(metric.quantile * 100).toFixed(2)} per ${metric.per}` : metric.type;
    return XP.el("div", { class: "card", "data-metric": metric.metric },
      XP.el("div", { class: "metric-head" }, XP.el("h2", {}, metric.metric),
        XP.el("span", { class: "muted", "data-field": "kind" }, `${kind} · ${metric.role} · ${better}`)),
      XP.el("table", { class: "data metric" },
        XP.el("colgroup", {}, ["name", "units", "mean", "lift", "ci", "p", "note"].map(c => XP.el("col", { class: `c-${c}` }))),
        XP.el("thead", {}, head), XP.el("tbody", {}, rows)));
  }

  function drawTrend(trend, metric) {
    const series = trend[metric] || [];
    const note = document.getElementById("trend-note");
    const labels = [...new Set(series.flatMap(s => s.points.map(p => p.computed_at)))].sort();
    note.textContent = labels.length ? `${labels.length} snapshots from xp.results (written by \`xp jobs run stats\`).` :
      "No stored snapshots yet: run `xp jobs run stats` (the scheduler in `xp up` does it) to build the trend.";
    const datasets = [];
    series.forEach((s, i) => {
      const color = XP.palette[(i + 1) % XP.palette.length];
      const at = Object.fromEntries(s.points.map(p => [p.computed_at, p]));
      const value = f => labels.map(l => at[l] && at[l][f] !== null ? at[l][f] * 100 : null);
      datasets.push({ label: `${s.name} lift`, data: value("estimate"), borderColor: color, backgroundColor: color,
        borderWidth: 2, pointRadius: 2, tension: 0.2 });
      datasets.push({ label: `${s.name} interval`, data: value("ci_high"), borderColor: "transparent",
        backgroundColor: color + "22", pointRadius: 0, fill: "+1" });
      datasets.push({ label: `${s.name} low`, data: value("ci_low"), borderColor: "transparent", pointRadius: 0, fill: false });
    });
    XP.chart(document.getElementById("trend-chart"), {
      type: "line",
      data: { labels: labels.map(l => XP.time(l).slice(5, 16)), datasets },
      options: { maintainAspectRatio: false, spanGaps: true,
        plugins: { legend: { labels: { filter: item => item.text.endsWith(" lift") } },
          tooltip: { callbacks: { label: c => `${c.dataset.label}: ${c.parsed.y === null ? "—" : c.parsed.y.toFixed(1) + "%"}` } } },
        scales: { y: { title: { display: true, text: "relative lift (%)" }, grid: { color: "#eef1f4" } }, x: { grid: { display: false } } } },
    });
  }

  function exportsBlock(method) {
    const box = document.getElementById("exports");
    box.replaceChildren();
    const view = viewText();
    const sets = [["results", view ? `Results for this view${view}` : "Results now (per metric × variation)"], ["snapshots", "All stored snapshots"], ["daily", "Daily aggregates (xp.daily_metrics)"]];
    for (const [dataset, label] of sets) {
      const query = new URLSearchParams({ method });
      if (dataset === "results") for (const name of ["since", "until", "segment", "top"]) if (params.get(name)) query.set(name, params.get(name));
      const links = ["csv", "json", "parquet", "xlsx"].map(fmt => XP.el("a", {
        class: "button", "data-export": `${dataset}.${fmt}`,
        href: `/api/experiments/${encodeURIComponent(key)}/export/${dataset}.${fmt}?${query}`,
      }, fmt.toUpperCase()));
      box.append(XP.el("div", { class: "row" }, XP.el("span", {}, label), links));
    }
  }

  let reloadTimer = null;
  // Which result the page shows: the stored snapshot (`xp jobs run stats`) or one this dashboard computed.
  function sourceText(shown) {
    const what = shown.source === "snapshot" ? "stored snapshot (xp jobs run stats)" : "computed by the dashboard";
    const age = shown.age_seconds < 90 ? `${Math.round(shown.age_seconds)} s` : `${Math.round(shown.age_seconds / 60)} min`;
    const took = shown.took_seconds === undefined ? "" : ` (took ${shown.took_seconds} s)`;
    return `· ${what}${took}, ${age} old` + (shown.refreshing ? " · refreshing in the background" : "");
  }

  // A view with a window or a segment is computed in the background: the API answers 202 with
  // `computing` until the result is there; the page says so, counts the seconds and polls.
  let tickTimer = null;
  function viewText() {
    const parts = [];
    if (params.get("since")) parts.push(`since ${XP.time(params.get("since"))}`);
    if (params.get("until")) parts.push(`until ${XP.time(params.get("until"))}`);
    if (params.get("segment")) parts.push(`by ${params.get("segment")}`);
    return parts.length ? ` (${parts.join(", ")})` : "";
  }
  function showComputing(computing) {
    const box = document.getElementById("computing");
    const shownAt = Date.now();
    const draw = () => {
      const seconds = Math.round(computing.elapsed_seconds + (Date.now() - shownAt) / 1000);
      const what = computing.state === "queued" ? "Waiting for a free worker to compute" : "Computing";
      box.textContent = `${what} results for this view${viewText()}… (started ${seconds} s ago). ` +
        "The page shows them as soon as they are ready.";
    };
    draw();
    box.hidden = false;
    box.dataset.state = computing.state;
    document.body.dataset.computing = "true";
    clearInterval(tickTimer);
    tickTimer = setInterval(draw, 1000);
  }
  function hideComputing() {
    clearInterval(tickTimer);
    const box = document.getElementById("computing");
    box.hidden = true;
    delete box.dataset.state;
    document.body.dataset.computing = "false";
  }

  async function load() {
    const method = methodSelect.value;
    clearTimeout(reloadTimer);
    try {
      const query = new URLSearchParams();
      for (const name of ["method", "since", "until", "segment", "top"]) if (params.get(name)) query.set(name, params.get(name));
      const data = await XP.api(`/api/experiments/${encodeURIComponent(key)}/results?${query}`);
      XP.showError(null);
      if (data.computing) {
        showComputing(data.computing);
        reloadTimer = setTimeout(load, data.computing.retry_after_seconds * 1000);
        return;
      }
      hideComputing();
      const result = data.result, info = data.experiment;
      document.getElementById("title").textContent = info.name;
      document.title = `${info.name} · xpstream`;
      document.getElementById("subtitle").replaceChildren(
        XP.el("span", { class: `pill ${info.status}` }, info.status), "  ",
        info.owner ? `owner ${info.owner} · ` : "", info.hypothesis || "");
      const banner = document.getElementById("srm-banner");
      banner.hidden = !data.srm_flagged;
      banner.textContent = `Sample ratio mismatch (SRM p = ${XP.g(result.srm_p_value, 3)} < 0.001): the split does not match the configured weights. Do not trust these results until the cause is found.`;
      const level = `${Math.round(data.confidence_level * 100)}%`;
      document.getElementById("summary").replaceChildren(
        XP.el("span", {}, "Method ", XP.el("b", { id: "method-name" }, result.method)),
        XP.el("span", {}, "Computed ", XP.el("b", { id: "computed-at" }, XP.time(result.computed_at)), " UTC ",
          XP.el("span", { id: "results-source", class: "muted", "data-source": data.shown.source, "data-computed-at": data.shown.computed_at },
            sourceText(data.shown))),
        XP.el("span", {}, "SRM p = ", XP.el("b", { id: "srm-p", class: data.srm_flagged ? "down" : "" }, XP.g(result.srm_p_value, 3))),
        XP.el("span", {}, "Variations ", XP.el("b", {}, info.variations.map(v => `${v.name} ${Math.round(v.weight * 100)}%`).join(" · "))));
      const bayesian = result.method === "bayesian";
      methodSelect.value = result.method;
      drawSegments(data, bayesian);
      document.getElementById("metrics").replaceChildren(...data.primary_and_secondary.map(m => metricTable(m, bayesian, level)));
      document.getElementById("guardrails").replaceChildren(...data.guardrails.map(m => metricTable(m, bayesian, level)));
      document.getElementById("guardrails-section").hidden = data.guardrails.length === 0;
      const trendSelect = document.getElementById("trend-metric");
      const names = result.metrics.map(m => m.metric);
      const chosen = names.includes(trendSelect.value) ? trendSelect.value : names[0];
      trendSelect.replaceChildren(...names.map(n => XP.el("option", { value: n, selected: n === chosen }, n)));
      trendSelect.onchange = () => drawTrend(data.trend, trendSelect.value);
      drawTrend(data.trend, chosen);
      const docs = XP.el("a", { href: data.method_docs }, "how the statistics work");
      document.getElementById("method-note").replaceChildren(
        `Relative lift of each variation against control at ${level} confidence, method ${result.method}; `,
        "multiply-exposed and overridden units are excluded. See ", docs, ". ",
        "These are the numbers `xp results " + key + " --format json --method " + result.method + "` prints.");
      exportsBlock(result.method);
      document.body.dataset.loaded = "true";
      clearTimeout(reloadTimer);
      if (data.shown.refreshing) reloadTimer = setTimeout(load, 5000);  // show the fresh result when it lands
    } catch (error) {
      hideComputing();  // a failed computation: its error, no polling (the API keeps it a while)
      XP.showError(error);
    }
  }
  function drawSegments(data, bayesian) {
    const box = document.getElementById("segments");
    const input = document.getElementById("segment-input");
    input.value = params.get("segment") || "";
    const s = data.segments;
    if (!s) { box.replaceChildren(XP.el("p", { class: "muted" }, data.segments_note)); return; }
    const metricName = (data.primary_and_secondary[0] || data.guardrails[0] || {}).metric;
    const treatments = data.experiment.variations.slice(1);
    const head = XP.el("tr", {}, XP.el("th", {}, s.dimension), XP.el("th", { class: "num" }, "Units"), XP.el("th", { class: "num" }, "SRM p"),
      treatments.map(v => XP.el("th", { class: "num" }, `${v.name}: lift (${bayesian ? "chance to win" : "p"})`)));
    const rows = s.values.map(segment => {
      const metric = segment.metrics.find(m => m.metric === metricName);
      const cells = treatments.map(t => {
        const v = metric && metric.variants.find(x => x.variation_id === t.id);
        if (!v) return XP.el("td", { class: "num muted" }, "—");
        const dir = v.significant && v.estimate !== null ? ((v.estimate > 0) === metric.higher_is_better ? "up" : "down") : "";
        return XP.el("td", { class: "num" }, XP.el("span", { class: dir }, XP.signedPct(v.estimate)),
          XP.el("span", { class: "muted small" }, ` (${bayesian ? XP.pct(v.chance_to_win) : XP.g(v.p_value, 3)})`));
      });
      return XP.el("tr", { "data-segment": segment.segment }, XP.el("td", {}, segment.segment), XP.el("td", { class: "num" }, XP.int(segment.units)),
        XP.el("td", { class: "num" }, XP.g(segment.srm_p_value, 3)), cells);
    });
    box.replaceChildren(XP.el("p", { class: "muted small" }, `${metricName} by ${s.dimension}: the ${s.top} largest values, the rest as "${s.other_label}".`),
      XP.el("table", { class: "data" }, XP.el("thead", {}, head), XP.el("tbody", {}, rows)));
  }
  document.getElementById("segment-form").addEventListener("submit", event => {
    event.preventDefault();
    const url = new URL(location.href);
    const value = document.getElementById("segment-input").value.trim();
    if (value) url.searchParams.set("segment", value); else url.searchParams.delete("segment");
    history.replaceState(null, "", url);
    params.delete("segment"); if (value) params.set("segment", value);
    document.body.dataset.loaded = "false";
    load();
  });
  methodSelect.addEventListener("change", () => {
    params.set("method", methodSelect.value);
    const url = new URL(location.href);
    url.searchParams.set("method", methodSelect.value);
    history.replaceState(null, "", url);
    document.body.dataset.loaded = "false";
    load();
  });
  load();
})();
