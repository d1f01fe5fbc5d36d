// A GrowthBook JavaScript SDK connected to the service's event stream (GET /sub/{clientKey}).
// argv: apiHost clientKey mode(remote|local) attributesJSON featureKey
// Prints one JSON line {"value": ...} at start and after every change of the feature's value;
// exits when stdin closes.
const { GrowthBook, setPolyfills } = require("@growthbook/growthbook");
const { EventSource } = require("eventsource");

setPolyfills({ EventSource });

async function main() {
  const [apiHost, clientKey, mode, attributesJson, featureKey] = process.argv.slice(2);
  const gb = new GrowthBook({
    apiHost,
    clientKey,
    attributes: JSON.parse(attributesJson),
    remoteEval: mode === "remote",
  });
  let last;
  const report = () => {
    const value = gb.getFeatureValue(featureKey, null);
    const text = JSON.stringify({ value });
    if (text !== last) {
      last = text;
      console.log(text);
    }
  };
  gb.setRenderer(report);
  const status = await gb.init({ timeout: 10000, streaming: true });
  if (!status.success) throw new Error(`init failed: ${JSON.stringify(status)}`);
  report();
  process.stdin.on("end", () => {
    gb.destroy();
    process.exit(0);
  });
  process.stdin.resume();
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
