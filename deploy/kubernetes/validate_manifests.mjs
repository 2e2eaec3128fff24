// Validates Kubernetes objects offline against the Kubernetes OpenAPI schemas bundled in the npm
// package kubernetes-models, and prints them as one JSON array for further checks.
//
//   node validate_manifests.mjs NODE_MODULES_DIR [FILE]   (FILE: a YAML stream; default stdin)
//
// Each document must be an object of a kind the package knows (apiVersion + kind); it must
// match that kind's schema (types, required fields, formats) and carry no field the schema does
// not define: a misspelled field is an error, not silently dropped by the API server's pruning.
// Unknown fields are found by watching which properties the compiled schema validator reads: it
// reads every property its schema defines (and every key of a map), so a property it never
// reads is one the schema does not have. Exit status: 0 when every object is valid, 1 with one
// line per error on stderr (document index, kind/name, JSON path), 2 on a usage error.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

function usage(message) {
  process.stderr.write(`validate_manifests: ${message}\n`);
  process.exit(2);
}

const [modulesDir, inputFile] = process.argv.slice(2);
if (!modulesDir) usage("usage: node validate_manifests.mjs NODE_MODULES_DIR [FILE]");
const require = createRequire(join(modulesDir, "noop.js"));
let yaml;
try {
  yaml = require("js-yaml");
} catch (e) {
  usage(`js-yaml not found under ${modulesDir}: ${e.message}`);
}
const modelsDir = join(modulesDir, "kubernetes-models");

// apiVersion "apps/v1" -> kubernetes-models/apps/v1/Kind.js; "v1" -> kubernetes-models/v1/Kind.js.
async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind)) {
    return null;
  }
  const file = join(modelsDir, ...apiVersion.split("/"), `${kind}.js`);
  let module;
  try {
    module = await import(pathToFileURL(file).href);
  } catch (e) {
    if (e.code === "ERR_MODULE_NOT_FOUND") return null;
    throw e;
  }
  const model = module[kind];
  return typeof model === "function" && typeof model.prototype.validate === "function"
    ? model
    : null;
}

// Wraps value so that every property read is recorded in `seen` (per object).
function track(value, seen) {
  if (value === null || typeof value !== "object") return value;
  const read = new Set();
  seen.set(value, read);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") read.add(key);
      const child = Reflect.get(target, key, receiver);
      if (child === null || typeof child !== "object") return child;
      if (!children.has(key)) children.set(key, track(child, seen));
      return children.get(key);
    },
  });
}

// Paths of properties of plain objects under `value` that the validator never read.
function unread(value, seen, path, out) {
  if (value === null || typeof value !== "object") return;
  const read = seen.get(value);
  if (Array.isArray(value)) {
    value.forEach((item, i) => unread(item, seen, `${path}/${i}`, out));
    return;
  }
  for (const key of Object.keys(value)) {
    if (read === undefined || !read.has(key)) {
      out.push(`${path}/${key}`);
    } else {
      unread(value[key], seen, `${path}/${key}`, out);
    }
  }
}

const text = readFileSync(inputFile ?? 0, "utf8");
let documents;
try {
  documents = yaml.loadAll(text).filter((d) => d !== null && d !== undefined);
} catch (e) {
  usage(`${inputFile ?? "stdin"}: not YAML: ${e.message}`);
}

const errors = [];
for (const [index, doc] of documents.entries()) {
  const where = `document ${index} (${doc?.kind ?? "?"}/${doc?.metadata?.name ?? "?"})`;
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    errors.push(`${where}: not an object`);
    continue;
  }
  const model = await modelFor(doc.apiVersion, doc.kind);
  if (model === null) {
    errors.push(`${where}: no schema for apiVersion ${doc.apiVersion} kind ${doc.kind}`);
    continue;
  }
  const seen = new Map();
  try {
    // The model's validate() runs the compiled schema on `this`: run it on the tracked document.
    model.prototype.validate.call(track(doc, seen));
  } catch (e) {
    errors.push(`${where}: ${e.message}`);
    continue;
  }
  const unknown = [];
  unread(doc, seen, "", unknown);
  for (const path of unknown) errors.push(`${where}: ${path}: field not in the ${doc.kind} schema`);
}

if (errors.length > 0) {
  process.stderr.write(errors.map((e) => `validate_manifests: ${e}\n`).join(""));
  process.exit(1);
}
process.stdout.write(JSON.stringify(documents));
