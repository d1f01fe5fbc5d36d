// A React page that assigns with GrowthBook's React SDK and reports to xpstream.
//
// The SDK reads its features from the assignment service (GET /api/features/{clientKey}, cross-origin),
// assigns this page's user in the browser, and its tracking callback sends one exposure per experiment
// the user sees to the service's collector (POST /v1/events); "Buy" sends a purchase event the same way.
// The service URL and client key come from ./config.json, the user from the page's query string
// (?user=u1&country=US): a real app would take its signed-in user.
import { GrowthBook } from "@growthbook/growthbook";
import { GrowthBookProvider, useFeature } from "@growthbook/growthbook-react";
import { useState } from "react";
import { createRoot } from "react-dom/client";

const FEATURES = ["checkout-button-color", "pricing-page-layout"];
const sent = { exposures: 0, purchases: 0 };

function showSent() {
  const status = document.getElementById("sent");
  if (status) {
    status.dataset.exposures = String(sent.exposures);
    status.dataset.purchases = String(sent.purchases);
    status.textContent = `sent to xpstream: ${sent.exposures} exposure(s), ${sent.purchases} purchase(s)`;
  }
}

async function sendToCollector(config, exposures, events) {
  const answer = await fetch(`${config.serviceUrl}/v1/events`, {
    method: "POST",
    keepalive: true, // survives navigating away
    headers: { "Content-Type": "application/json", "X-XP-Key": config.clientKey },
    body: JSON.stringify({ exposures, events }),
  });
  if (answer.status !== 202) throw new Error(`collector answered ${answer.status}`);
  const verdict = await answer.json();
  if (verdict.rejected) throw new Error(`the collector refused records: ${JSON.stringify(verdict.errors)}`);
}

// The same id for the same unit, experiment and variation: a resent exposure (a reload) is deduplicated.
async function exposureId(unitId, experimentKey, variationId) {
  const bytes = new TextEncoder().encode(`${unitId}\x1f${experimentKey}\x1f${variationId}`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  return `sdk-${hex.slice(0, 32)}`;
}

function trackTo(config) {
  return async (experiment, result) => {
    const unitId = String(result.hashValue);
    const exposure = {
      exposure_id: await exposureId(unitId, experiment.key, result.variationId),
      unit_id: unitId,
      hash_attribute: result.hashAttribute,
      experiment_key: experiment.key,
      variation_id: result.variationId,
      variation_key: result.key,
      feature_key: result.featureId || null,
      bucket: result.bucket ?? null,
      source: "sdk",
      exposed_at: new Date().toISOString(),
      user_agent: navigator.userAgent.slice(0, 1024),
    };
    await sendToCollector(config, [exposure], []);
    sent.exposures += 1;
    showSent();
  };
}

function Feature({ id }) {
  const result = useFeature(id);
  const experiment = result.experimentResult;
  const inExperiment = Boolean(experiment && experiment.inExperiment);
  return (
    <>
      <dt>{id}</dt>
      <dd
        data-feature={id}
        data-value={JSON.stringify(result.value)}
        data-in-experiment={String(inExperiment)}
        data-variation-id={inExperiment ? String(experiment.variationId) : ""}
      >
        {JSON.stringify(result.value)} {inExperiment ? `(variation ${experiment.variationId})` : "(not in the experiment)"}
      </dd>
    </>
  );
}

function Checkout({ config, user }) {
  const color = useFeature("checkout-button-color").value || "#57606a";
  const [amount, setAmount] = useState("10");
  const [error, setError] = useState("");
  const buy = async () => {
    const value = Number(amount);
    if (!Number.isFinite(value)) return setError("the amount must be a number");
    const event = {
      event_id: crypto.randomUUID(),
      unit_id: user.id,
      event_name: "purchase",
      value,
      occurred_at: new Date().toISOString(),
    };
    try {
      await sendToCollector(config, [], [event]);
      sent.purchases += 1;
      setError("");
      showSent();
    } catch (e) {
      setError(String(e.message || e));
    }
  };
  return (
    <main>
      <h1>Checkout for {user.id}</h1>
      <dl>
        {FEATURES.map((id) => (
          <Feature key={id} id={id} />
        ))}
      </dl>
      <p>
        <input id="amount" value={amount} onChange={(e) => setAmount(e.target.value)} aria-label="amount" />{" "}
        <button id="buy" className="checkout" style={{ background: color }} onClick={buy}>
          Buy
        </button>
      </p>
      <p id="sent" data-exposures="0" data-purchases="0" />
      <p id="error">{error}</p>
    </main>
  );
}

async function start() {
  const root = createRoot(document.getElementById("root"));
  const params = new URLSearchParams(window.location.search);
  const user = { id: params.get("user") || "", country: params.get("country") || "" };
  if (!user.id) {
    root.render(<p id="error">add ?user=ID (and &amp;country=US) to the URL</p>);
    return;
  }
  const config = await (await fetch("./config.json")).json();
  const growthbook = new GrowthBook({
    apiHost: config.serviceUrl,
    clientKey: config.clientKey,
    attributes: user,
    trackingCallback: trackTo(config),
  });
  const loaded = await growthbook.init({ timeout: 5000 });
  if (!loaded.success) {
    root.render(<p id="error">could not load features from {config.serviceUrl}</p>);
    return;
  }
  root.render(
    <GrowthBookProvider growthbook={growthbook}>
      <Checkout config={config} user={user} />
    </GrowthBookProvider>,
  );
  document.body.dataset.ready = "true";
}

start();
