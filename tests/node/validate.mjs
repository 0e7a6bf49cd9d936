// validate.mjs: checks every manifest in deploy/kubernetes against the Kubernetes API schemas
// (kubernetes-models), then prints, one JSON array a line, the args of every hostlo container, so
// the test can run them through hostlo itself and the manifests cannot drift from the CLI.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { Pod } from "kubernetes-models/v1";
import { DaemonSet } from "kubernetes-models/apps/v1";

const kinds = { "v1/Pod": Pod, "apps/v1/DaemonSet": DaemonSet };
const dir = process.argv[2];
let failed = 0;

for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort()) {
  for (const doc of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
    if (doc.errors.length) {
      console.error(`${file}: YAML: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    const Model = kinds[`${obj.apiVersion}/${obj.kind}`];
    if (!Model) {
      console.error(`${file}: ${obj.apiVersion} ${obj.kind}: no schema known to this check`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.error(`valid: ${file} ${obj.kind}/${obj.metadata.name}`);
    } catch (e) {
      console.error(`${file}: ${obj.kind}/${obj.metadata?.name}: ${e.message}`);
      failed++;
      continue;
    }
    const spec = obj.kind === "Pod" ? obj.spec : obj.spec.template.spec;
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      if (/(^|\/)hostlo(-agent)?$/.test(c.image.split(":")[0])) console.log(JSON.stringify(c.args));
    }
  }
}
process.exit(failed ? 1 : 0);
