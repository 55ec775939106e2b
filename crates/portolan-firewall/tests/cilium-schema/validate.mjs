// Checks CiliumNetworkPolicy objects (one `*.cnp.json` file each, in the
// directory given as the only argument) against the cilium.io/v2 CRD as shipped by
// @kubernetes-models/cilium, in two ways:
//  1. the CRD's OpenAPI schema, compiled by the package into validators:
//     types, enums, patterns, required fields, oneOf;
//  2. the package's TypeScript interfaces, generated from the same CRD: tsc's
//     excess-property check rejects any field the CRD does not define, which
//     the CRD schema itself allows (Kubernetes prunes unknown fields).
// Prints one line per file and exits 1 when any check fails.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { CiliumNetworkPolicy } from "@kubernetes-models/cilium/cilium.io/v2/CiliumNetworkPolicy";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node validate.mjs DIR");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith(".cnp.json")).sort();
if (files.length === 0) {
  console.error(`no .cnp.json file in ${dir}`);
  process.exit(2);
}

let failed = false;
let ts = 'import type { ICiliumNetworkPolicy } from "@kubernetes-models/cilium/cilium.io/v2/CiliumNetworkPolicy";\n';
files.forEach((file, i) => {
  const text = readFileSync(join(dir, file), "utf8");
  const object = JSON.parse(text);
  try {
    new CiliumNetworkPolicy(object).validate();
    console.log(`schema ok ${file}`);
  } catch (e) {
    failed = true;
    console.log(`schema FAIL ${file}: ${e.message}`);
  }
  ts += `// ${file}\nexport const policy${i}: ICiliumNetworkPolicy = ${text.trim()};\n`;
});

writeFileSync(join(dir, "check.ts"), ts);
writeFileSync(
  join(dir, "tsconfig.json"),
  JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      module: "nodenext",
      moduleResolution: "nodenext",
      target: "es2022",
      skipLibCheck: true,
    },
    files: ["check.ts"],
  }),
);
try {
  execFileSync(process.execPath, [join(here, "node_modules", "typescript", "bin", "tsc"), "-p", dir], {
    stdio: "pipe",
    encoding: "utf8",
  });
  console.log(`types ok ${files.length} file(s)`);
} catch (e) {
  failed = true;
  console.log(`types FAIL:\n${e.stdout}${e.stderr}`);
}
process.exit(failed ? 1 : 0);
