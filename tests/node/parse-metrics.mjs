// parse-metrics.mjs: reads the Prometheus text exposition format on stdin with a real parser
// (parse-prometheus-text-format) and prints what it understood as JSON, or fails.
import parse from "parse-prometheus-text-format";
import { readFileSync } from "node:fs";

const families = parse(readFileSync(0, "utf8"));
console.log(JSON.stringify(families));
