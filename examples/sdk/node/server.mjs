// A Node backend that assigns with the GrowthBook JavaScript SDK and reports to xpstream.
//
// The SDK reads its features from the assignment service (GET /api/features/{clientKey}) once at start
// (and every 30 s after), assigns each request's user locally, and the exposures its tracking callback
// collects during a request are sent to the service's collector (POST /v1/events) before the answer;
// a purchase is a metric event sent the same way.
//
//   XP_SERVICE_URL=http://127.0.0.1:8100 XP_CLIENT_KEY=ck_1 PORT=3000 node server.mjs
//   curl 'http://127.0.0.1:3000/checkout?user=u1&country=US'
//   curl -X POST http://127.0.0.1:3000/purchase -H 'Content-Type: application/json' -d '{"user":"u1","amount":12.5}'
import { createHash, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { GrowthBookClient } from "@growthbook/growthbook";

const SERVICE_URL = (process.env.XP_SERVICE_URL || "http://127.0.0.1:8100").replace(/\/+$/, "");
const CLIENT_KEY = process.env.XP_CLIENT_KEY || "";
const PORT = Number(process.env.PORT || 3000);
const FEATURES = ["checkout-button-color", "pricing-page-layout"];

const growthbook = new GrowthBookClient({ apiHost: SERVICE_URL, clientKey: CLIENT_KEY });

async function sendToCollector(exposures, events) {
  const answer = await fetch(`${SERVICE_URL}/v1/events`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-XP-Key": CLIENT_KEY },
    body: JSON.stringify({ exposures, events }),
  });
  if (answer.status !== 202) throw new Error(`collector answered ${answer.status}: ${await answer.text()}`);
  const verdict = await answer.json();
  if (verdict.rejected) throw new Error(`the collector refused records: ${JSON.stringify(verdict.errors)}`);
}

// The same id for the same unit, experiment and variation: a resent exposure is deduplicated.
function exposureId(unitId, experimentKey, variationId) {
  const digest = createHash("sha256").update(`${unitId}\x1f${experimentKey}\x1f${variationId}`).digest("hex");
  return `sdk-${digest.slice(0, 32)}`;
}

function toExposure(experiment, result) {
  const unitId = String(result.hashValue);
  return {
    exposure_id: exposureId(unitId, experiment.key, result.variationId),
    unit_id: unitId,
    hash_attribute: result.hashAttribute,
    experiment_key: experiment.key,
    variation_id: result.variationId,
    variation_key: result.key,
    feature_key: result.featureId || null,
    bucket: result.bucket ?? null,
    source: "sdk",
    exposed_at: new Date().toISOString(),
  };
}

async function checkout(url) {
  const user = url.searchParams.get("user");
  if (!user) return [400, { error: "user is required" }];
  const exposures = [];
  const scoped = growthbook.createScopedInstance({
    attributes: { id: user, country: url.searchParams.get("country") || "" },
  });
  scoped.setTrackingCallback((experiment, result) => {
    exposures.push(toExposure(experiment, result));
  });
  const features = {};
  for (const key of FEATURES) {
    const result = scoped.evalFeature(key);
    const inExperiment = Boolean(result.experimentResult && result.experimentResult.inExperiment);
    features[key] = {
      value: result.value,
      source: result.source,
      in_experiment: inExperiment,
      variation_id: inExperiment ? result.experimentResult.variationId : null,
    };
  }
  if (exposures.length) await sendToCollector(exposures, []);
  return [200, { user, features }];
}

async function purchase(body) {
  const { user, amount } = body || {};
  if (typeof user !== "string" || !user || typeof amount !== "number" || !Number.isFinite(amount)) {
    return [400, { error: "a JSON body {user, amount} is required" }];
  }
  const event = {
    event_id: randomUUID(),
    unit_id: user,
    event_name: "purchase",
    value: amount,
    occurred_at: new Date().toISOString(),
  };
  await sendToCollector([], [event]);
  return [202, { event_id: event.event_id }];
}

async function readJson(request) {
  let text = "";
  for await (const chunk of request) {
    text += chunk;
    if (text.length > 65536) return null;
  }
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function route(request) {
  const url = new URL(request.url, "http://localhost");
  if (request.method === "GET" && url.pathname === "/healthz") return [200, { status: "ok" }];
  if (request.method === "GET" && url.pathname === "/checkout") return checkout(url);
  if (request.method === "POST" && url.pathname === "/purchase") return purchase(await readJson(request));
  return [404, { error: "not found" }];
}

const server = createServer((request, response) => {
  route(request)
    .catch((error) => {
      console.error(error);
      return [502, { error: String(error.message || error) }];
    })
    .then(([status, body]) => {
      response.writeHead(status, { "Content-Type": "application/json" });
      response.end(JSON.stringify(body));
    });
});

const loaded = await growthbook.init({ timeout: 5000 });
if (!loaded.success) {
  console.error(`could not load features from ${SERVICE_URL}: ${loaded.error?.message || loaded.source}`);
  process.exit(1);
}
setInterval(() => growthbook.refreshFeatures().catch((error) => console.error(error)), 30_000).unref();
server.listen(PORT, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${PORT}`));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
