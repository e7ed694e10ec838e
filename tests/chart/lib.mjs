// Shared pieces of the chart tests: running helm, parsing what it renders,
// validating every object against the Kubernetes / KEDA / prometheus-operator
// schema models, and a strict unknown-field check.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

import { ConfigMap, Service, ServiceAccount } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import {
  PodMonitor,
  PrometheusRule,
  ServiceMonitor,
} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

export const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "..", "..");
export const chartDir = path.join(root, "charts", "embedq");

// Every kind the chart may render, by apiVersion/kind. Anything else fails.
export const MODELS = {
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/Ingress": Ingress,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

export const helmBin = process.env.HELM || path.join(here, ".bin", "helm");

let failures = 0;
let checks = 0;
export function ok(cond, what) {
  checks++;
  if (!cond) {
    failures++;
    console.log(`FAIL: ${what}`);
  }
  return cond;
}
export function eq(actual, expected, what) {
  const same = JSON.stringify(actual) === JSON.stringify(expected);
  return ok(same, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
export function finish(name) {
  console.log(`${name}: ${checks - failures} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

// Skipped (ctest SKIP_RETURN_CODE 77) without helm or the npm packages.
export function requireTools() {
  if (!fs.existsSync(helmBin)) {
    console.log(`SKIP: no helm at ${helmBin} (run tests/chart/setup.sh)`);
    process.exit(77);
  }
}

export function tmpdir(prefix = "embedq-chart-") {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on("exit", () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

export function helm(args, opts = {}) {
  const r = spawnSync(helmBin, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  return { status: r.status, stdout: r.stdout || "", stderr: r.stderr || "" };
}

// Renders the chart with value files and values (written to a temp file).
let seq = 0;
export function render({ files = [], values = null, release = "rel", namespace = "ml" } = {}) {
  const args = ["template", release, chartDir, "--namespace", namespace];
  for (const f of files) args.push("-f", f);
  if (values) {
    const f = path.join(scratch(), `values-${seq++}.yaml`);
    fs.writeFileSync(f, YAML.stringify(values));
    args.push("-f", f);
  }
  return helm(args);
}

let scratchDir = null;
function scratch() {
  if (!scratchDir) scratchDir = tmpdir();
  return scratchDir;
}

// Parses `helm template` output into objects; a YAML error is a failure.
export function parseManifests(text, what) {
  const docs = YAML.parseAllDocuments(text);
  const out = [];
  for (const d of docs) {
    if (d.errors.length) {
      ok(false, `${what}: YAML error: ${d.errors[0].message}`);
      continue;
    }
    const o = d.toJS();
    if (o == null) continue;
    out.push(o);
  }
  return out;
}

// Wraps an object so that every property the validator looks at is
// recorded. A plain object of which the validator read some properties by
// name, never enumerated, and left others unread, has unknown fields: the
// schema models accept those silently (no additionalProperties: false), but
// the API server drops or rejects them.
function tracked(obj, where, seen) {
  if (obj === null || typeof obj !== "object") return obj;
  const info = { where, obj, read: new Set(), enumerated: false };
  seen.push(info);
  const kids = new Map();
  return new Proxy(obj, {
    get(t, k, r) {
      const v = Reflect.get(t, k, r);
      if (typeof k !== "string") return v;
      info.read.add(k);
      if (v !== null && typeof v === "object" && Object.prototype.hasOwnProperty.call(t, k)) {
        if (!kids.has(k)) kids.set(k, tracked(v, `${where}.${k}`, seen));
        return kids.get(k);
      }
      return v;
    },
    has(t, k) {
      if (typeof k === "string") info.read.add(k);
      return Reflect.has(t, k);
    },
    ownKeys(t) {
      info.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

// Validates one object with its model; returns a list of problems.
export function validateObject(o) {
  const key = `${o.apiVersion}/${o.kind}`;
  const Model = MODELS[key];
  const name = `${o.kind}/${o.metadata && o.metadata.name}`;
  if (!Model) return [`${name}: unknown kind ${key} (no schema model registered)`];
  const problems = [];
  // 1. The model's own validate(), on a real instance.
  try {
    new Model(structuredClone(o)).validate();
  } catch (e) {
    problems.push(`${name}: schema: ${e.message}`);
    return problems;
  }
  // 2. The same validate function, run on a tracking proxy: unknown fields.
  const seen = [];
  const proxy = tracked(structuredClone(o), name, seen);
  try {
    Model.prototype.validate.call(proxy);
  } catch (e) {
    problems.push(`${name}: schema (tracked): ${e.message}`);
  }
  for (const s of seen) {
    if (Array.isArray(s.obj) || s.enumerated || s.read.size === 0) continue;
    for (const k of Object.keys(s.obj)) {
      if (!s.read.has(k)) problems.push(`${s.where}: unknown field '${k}'`);
    }
  }
  return problems;
}

// Deep merge the way helm merges value files (maps merge, the rest replaces).
export function merge(a, b) {
  if (b === undefined) return structuredClone(a);
  if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const out = structuredClone(a);
    for (const [k, v] of Object.entries(b)) out[k] = k in out ? merge(out[k], v) : structuredClone(v);
    return out;
  }
  return structuredClone(b);
}

export function loadYaml(file) {
  return YAML.parse(fs.readFileSync(file, "utf8")) || {};
}

// The HTTP API's contract (flags, variables, metrics) as the code must
// honour it: tests/api_contract.json, the one list the chart is checked
// against (and a test of the code can check the binary against).
export const apiContract = () => JSON.parse(fs.readFileSync(path.join(root, "tests", "api_contract.json"), "utf8"));

export const defaults = () => loadYaml(path.join(chartDir, "values.yaml"));
export const profiles = () =>
  fs
    .readdirSync(path.join(chartDir, "profiles"))
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => path.join(chartDir, "profiles", f));

// Kubernetes' $(VAR) expansion of env values: references to variables
// defined earlier in the list are replaced, $$ escapes, others stay.
export function expandEnv(env, resolveFrom) {
  const vals = {};
  for (const e of env) {
    let v;
    if (e.valueFrom) v = resolveFrom(e);
    else
      v = String(e.value ?? "").replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, n) =>
        m === "$$" ? "$" : n in vals ? vals[n] : m,
      );
    vals[e.name] = v;
  }
  return vals;
}

export function which(cmd) {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}
