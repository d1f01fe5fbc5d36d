// The GrowthBook JavaScript SDK against the assignment service, one GrowthBook instance per unit.
// argv: apiHost clientKey mode(remote|local) unitsJSON featuresJSON
// Prints one JSON line: [{"values": {feature: value}, "tracked": [[experimentKey, variationId], ...]}, ...]
const { GrowthBook, configureCache } = require("@growthbook/growthbook");

async function main() {
  const [apiHost, clientKey, mode, unitsJson, featuresJson] = process.argv.slice(2);
  const units = JSON.parse(unitsJson);
  const features = JSON.parse(featuresJson);
  // every unit's answer from the service, not from the SDK's cache of an earlier instance
  configureCache({ disableCache: true, backgroundSync: false });
  const out = [];
  for (const attributes of units) {
    const tracked = [];
    const gb = new GrowthBook({
      apiHost,
      clientKey,
      attributes,
      remoteEval: mode === "remote",
      trackingCallback: (experiment, result) => tracked.push([experiment.key, result.variationId]),
    });
    const status = await gb.init({ timeout: 10000 });
    if (!status.success) throw new Error(`init failed: ${JSON.stringify(status)}`);
    const values = {};
    for (const key of features) values[key] = gb.getFeatureValue(key, null);
    out.push({ values, tracked });
    gb.destroy();
  }
  console.log(JSON.stringify(out));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
