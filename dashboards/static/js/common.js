/* Shared helpers: API calls, number formats matching `xp results`, small DOM utils.
   No token in any URL: a signed-in browser sends the HttpOnly sign-in cookie (same origin only). */
"use strict";
const XP = (() => {
  async function api(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    return body;
  }

  function showError(error) {
    const box = document.getElementById("error");
    if (!box) return;
    if (error) { box.textContent = String(error.message || error); box.hidden = false; } else { box.hidden = true; }
  }

  // Python's format(x, ".Ng") (what `xp results` prints), e.g. g(0.000123, 3) → "0.000123", g(1.2e-5, 3) → "1.2e-05".
  function g(x, digits) {
    if (x === null || x === undefined) return "—";
    if (x === 0) return "0";
    if (!isFinite(x)) return String(x);
    const exponent = Math.floor(Math.log10(Math.abs(x)));
    let text;
    if (exponent < -4 || exponent >= digits) {
      text = x.toExponential(digits - 1);
      let [mantissa, power] = text.split("e");
      if (mantissa.includes(".")) mantissa = mantissa.replace(/0+$/, "").replace(/\.$/, "");
      const sign = power[0] === "-" ? "-" : "+";
      power = power.replace(/^[+-]/, "");
      text = `${mantissa}e${sign}${power.padStart(2, "0")}`;
    } else {
      text = x.toPrecision(digits);
      if (text.includes(".")) text = text.replace(/0+$/, "").replace(/\.$/, "");
    }
    return text;
  }
  // format(x, "+.1%")
  function signedPct(x, decimals = 1) {
    if (x === null || x === undefined) return "—";
    const v = (x * 100).toFixed(decimals);
    return (v.startsWith("-") ? v : "+" + v) + "%";
  }
  // format(x, ".1%")
  function pct(x, decimals = 1) {
    if (x === null || x === undefined) return "—";
    return (x * 100).toFixed(decimals) + "%";
  }
  function int(x) {
    if (x === null || x === undefined) return "—";
    return Number(x).toLocaleString("en-US");
  }
  function time(iso) {
    if (!iso) return "—";
    return iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, "");
  }
  function minuteLabel(iso) { return iso.slice(11, 16); }
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "html") node.innerHTML = value;
      else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the CSP, a style attribute is not
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const palette = ["#57606a", "#0969da", "#bf8700", "#8250df", "#1b7c83", "#bc4c00", "#4d2d00", "#6e7781"];
  function chart(canvas, config) {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 11;
    Chart.defaults.color = "#656d76";
    Chart.defaults.animation = false;
    const existing = Chart.getChart(canvas);
    if (existing) {
      existing.data = config.data;
      if (config.options) existing.options = config.options;
      existing.update("none");
      return existing;
    }
    return new Chart(canvas, config);
  }
  return { api, showError, g, signedPct, pct, int, time, minuteLabel, el, palette, chart };
})();
