// Evaluates GrowthBook conditions with the JavaScript SDK (the reference): argv[2] is a JSON list of
// [attributes, condition] pairs; prints the list of results as JSON.
const { evalCondition } = require("@growthbook/growthbook");

const pairs = JSON.parse(process.argv[2]);
console.log(JSON.stringify(pairs.map(([attributes, condition]) => evalCondition(attributes, condition, {}))));
