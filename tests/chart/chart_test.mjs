#!/usr/bin/env node
// The chart tests (ctest label `chart`), one case per invocation:
//   node chart_test.mjs lint|profiles|variants|negative|monitoring|env-names|worker-env
// Exit 0 pass, 1 fail, 77 skipped (no helm / node_modules / embedq binary).
import fs from "node:fs";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import http from "node:http";
import net from "node:net";
import YAML from "yaml";
import {
  apiContract, chartDir, here, defaults, eq, expandEnv, finish, helm, helmBin, loadYaml, merge, ok, parseManifests,
  profiles, render, requireTools, root, tmpdir, validateObject, which,
} from "./lib.mjs";

const CASE = process.argv[2];
requireTools();

// ---------------------------------------------------------------- helpers

const byKind = (objs, kind) => objs.filter((o) => o.kind === kind);
const one = (objs, kind, what) => {
  const l = byKind(objs, kind);
  ok(l.length === 1, `${what}: expected one ${kind}, got ${l.length}`);
  return l[0];
};
const envOf = (c) => Object.fromEntries((c.env || []).map((e) => [e.name, e]));
const CONTRACT = apiContract();
const apiOn = (v) => v.mode === "serve" || !!v.api.enabled;
const healthPort = (v) => (v.mode === "serve" ? "http-api" : "metrics");
// Variables the chart may give `embedq serve`: the contract's own and the
// worker's engine settings it shares.
const SERVE_ENV = new Set([...Object.values(CONTRACT.serve.flags), ...CONTRACT.serve.sharedEnv]);
const QUEUE_ENV = /^EMBEDQ_(SOURCE|GROUP|MODEL_NAME|BROKERS|IN_TOPIC|OUT_TOPIC|DLQ_TOPIC|KAFKA|CLIENT_ID|REDIS|IN_STREAM|OUT_STREAM|DLQ_STREAM|CONSUMER|CLAIM|MAX_DELIVERIES|OUT_MAXLEN|MAX_IN_FLIGHT|OUTPUT_FORMAT|QDRANT|MAX_MESSAGE_BYTES|MAX_DEPTH|PUBLISH_FAIL|METRICS_PORT|API_PORT|LONG_INPUT)/;
const num = (x) => Number(x);

// Renders, parses and validates; returns objects (or null when helm failed).
function renderOk(what, opts) {
  const r = render(opts);
  if (!ok(r.status === 0, `${what}: helm template failed: ${r.stderr.trim()}`)) return null;
  const objs = parseManifests(r.stdout, what);
  for (const o of objs) for (const p of validateObject(o)) ok(false, `${what}: ${p}`);
  return objs;
}

// The semantic facts every release must satisfy; `v` = the merged values.
function checkRelease(what, objs, v) {
  const dep = one(objs, "Deployment", what);
  if (!dep) return;
  const spec = dep.spec.template.spec;
  const podLabels = dep.spec.template.metadata.labels;
  const c = spec.containers.find((x) => x.name === v.mode);
  if (!ok(c, `${what}: container '${v.mode}'`)) return;
  eq(spec.containers.length, 1, `${what}: one container`);
  const env = envOf(c);
  const names = (c.env || []).map((e) => e.name);
  eq(names.length, new Set(names).size, `${what}: env names unique`);

  // Every $(VAR) refers to a variable defined before it (else it stays literal).
  const defined = new Set();
  for (const e of c.env) {
    for (const m of String(e.value ?? "").matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g))
      ok(defined.has(m[1]), `${what}: ${e.name} references $(${m[1]}) before it is defined`);
    defined.add(e.name);
  }
  // Secrets never appear as literal values: SASL / Redis passwords come by reference.
  for (const e of c.env)
    if (/PASSWORD|USERNAME|EXTRA_CONFIG/.test(e.name))
      ok(e.valueFrom && e.valueFrom.secretKeyRef, `${what}: ${e.name} from a secretKeyRef`);

  // Worker settings from values.
  const w = v.worker;
  const userEnv = new Set((v.extraEnv || []).map((e) => e.name));
  if (v.mode === "serve") {
    const want = {
      EMBEDQ_MODEL: v.model.path, EMBEDQ_SERVED_MODEL_NAME: v.api.servedModelName || v.model.name,
      EMBEDQ_HOST: "0.0.0.0", EMBEDQ_PORT: v.api.port, EMBEDQ_DEVICE: w.device, EMBEDQ_THREADS: w.threads,
      EMBEDQ_MAX_TOKENS: w.maxTokens, EMBEDQ_BATCH_TOKENS: w.batchTokens,
      EMBEDQ_TOKENIZE_THREADS: w.tokenizeThreads, EMBEDQ_DRAIN_TIMEOUT: w.drainTimeout, EMBEDQ_LOG_LEVEL: w.logLevel,
      OMP_WAIT_POLICY: "PASSIVE",
    };
    for (const [k, val] of Object.entries(want)) eq(env[k] && env[k].value, String(val), `${what}: env ${k}`);
    for (const n of names) {
      if (userEnv.has(n) || !n.startsWith("EMBEDQ_")) continue;
      ok(SERVE_ENV.has(n), `${what}: ${n} is a variable of embedq serve (tests/api_contract.json)`);
      ok(!QUEUE_ENV.test(n), `${what}: ${n} (a queue setting) not given to embedq serve`);
    }
    // The image's ENTRYPOINT runs the worker: serve mode replaces it.
    if (!v.command.length) eq(c.command, ["/usr/bin/tini", "--", "/usr/local/bin/embedq", "serve"], `${what}: command runs embedq serve`);
  } else {
  if (!v.command.length) ok(!c.command, `${what}: the image's entrypoint (embedq worker) runs`);
  const want = {
    EMBEDQ_SOURCE: v.source, EMBEDQ_MODEL: v.model.path, EMBEDQ_MODEL_NAME: v.model.name,
    EMBEDQ_GROUP: v.consumerGroup, EMBEDQ_DEVICE: w.device, EMBEDQ_THREADS: w.threads,
    EMBEDQ_MAX_TOKENS: w.maxTokens, EMBEDQ_LONG_INPUT: w.longInput, EMBEDQ_BATCH_TOKENS: w.batchTokens,
    EMBEDQ_MAX_WAIT_MS: w.maxWaitMs, EMBEDQ_MAX_IN_FLIGHT: w.maxInFlight,
    EMBEDQ_MAX_IN_FLIGHT_BYTES: w.maxInFlightBytes,
    EMBEDQ_TOKENIZE_THREADS: w.tokenizeThreads, EMBEDQ_OUTPUT_FORMAT: w.outputFormat,
    EMBEDQ_QDRANT_COLLECTION: w.qdrantCollection, EMBEDQ_MAX_MESSAGE_BYTES: w.maxMessageBytes,
    EMBEDQ_MAX_DEPTH: w.maxDepth, EMBEDQ_DRAIN_TIMEOUT: w.drainTimeout,
    EMBEDQ_PUBLISH_FAIL_TIMEOUT: w.publishFailTimeout,
    EMBEDQ_METRICS_PORT: w.metricsPort, EMBEDQ_LOG_LEVEL: w.logLevel, OMP_WAIT_POLICY: "PASSIVE",
  };
  if (v.source === "kafka")
    Object.assign(want, {
      EMBEDQ_BROKERS: v.kafka.brokers, EMBEDQ_IN_TOPIC: v.kafka.inTopic,
      EMBEDQ_OUT_TOPIC: v.kafka.outTopic, EMBEDQ_DLQ_TOPIC: v.kafka.dlqTopic, EMBEDQ_CLIENT_ID: v.kafka.clientId,
    });
  else
    Object.assign(want, {
      EMBEDQ_IN_STREAM: v.redis.inStream, EMBEDQ_OUT_STREAM: v.redis.outStream,
      EMBEDQ_DLQ_STREAM: v.redis.dlqStream, EMBEDQ_REDIS_COUNT: v.redis.count,
      EMBEDQ_REDIS_BLOCK_MS: v.redis.blockMs, EMBEDQ_CLAIM_IDLE_MS: v.redis.claimIdleMs,
      EMBEDQ_CLAIM_INTERVAL_MS: v.redis.claimIntervalMs, EMBEDQ_MAX_DELIVERIES: v.redis.maxDeliveries,
      EMBEDQ_OUT_MAXLEN: v.redis.outMaxlen,
    });
  for (const [k, val] of Object.entries(want))
    eq(env[k] && env[k].value, String(val), `${what}: env ${k}`);
  const other = v.source === "kafka" ? /^EMBEDQ_(REDIS|IN_STREAM|OUT_STREAM|DLQ_STREAM|CLAIM|MAX_DELIVERIES|OUT_MAXLEN|CONSUMER)/
                                     : /^EMBEDQ_(BROKERS|IN_TOPIC|OUT_TOPIC|DLQ_TOPIC|KAFKA|CLIENT_ID)/;
  for (const n of names) ok(!other.test(n), `${what}: ${n} does not belong to source ${v.source}`);
  if (v.api.enabled) eq(env.EMBEDQ_API_PORT && env.EMBEDQ_API_PORT.value, String(v.api.port), `${what}: env EMBEDQ_API_PORT`);
  }
  // The API's name and limits, in both modes; none of the API's variables with it off.
  const apiVars = { EMBEDQ_SERVED_MODEL_NAME: v.api.servedModelName || v.model.name, EMBEDQ_MAX_INPUTS: v.api.maxInputs,
                    EMBEDQ_MAX_PENDING_INPUTS: v.api.maxPendingInputs, EMBEDQ_MAX_BODY_BYTES: v.api.maxBodyBytes,
                    EMBEDQ_MAX_BODIES_BYTES: v.api.maxBodiesBytes, EMBEDQ_MAX_CONNECTIONS: v.api.maxConnections };
  if (apiOn(v)) for (const [k, val] of Object.entries(apiVars)) eq(env[k] && env[k].value, String(val), `${what}: env ${k}`);
  else for (const k of ["EMBEDQ_API_PORT", ...Object.keys(apiVars)]) ok(!env[k] || userEnv.has(k), `${what}: no ${k} with the API off`);

  // Grace period above the preStop sleep (API on) plus the drain timeout:
  // Kubernetes counts the grace period from the start of the preStop hook.
  const sleep = apiOn(v) ? v.api.preStopSleepSeconds : 0;
  const pre = c.lifecycle && c.lifecycle.preStop;
  if (sleep > 0) eq(pre && pre.exec && pre.exec.command, ["/bin/sleep", String(sleep)], `${what}: preStop sleeps ${sleep} s`);
  else ok(!pre, `${what}: no preStop hook`);
  const grace = spec.terminationGracePeriodSeconds;
  ok(grace > sleep + num(env.EMBEDQ_DRAIN_TIMEOUT.value),
     `${what}: terminationGracePeriodSeconds ${grace} > preStop ${sleep} + drain timeout ${env.EMBEDQ_DRAIN_TIMEOUT.value}`);
  if (v.terminationGracePeriodSeconds == null)
    eq(grace, sleep + w.drainTimeout + v.terminationGraceMarginSeconds, `${what}: grace = preStop + drain + margin`);

  // Probes and the health / metrics port: the worker's metrics port, or the
  // API's in serve mode (tests/api_contract.json healthPort).
  const portByName = Object.fromEntries((c.ports || []).map((p) => [p.name, p]));
  eq((c.ports || []).length, new Set((c.ports || []).map((p) => p.containerPort)).size, `${what}: container ports distinct`);
  if (v.mode === "serve") ok(!portByName.metrics, `${what}: serve mode has no separate metrics port`);
  else ok(portByName.metrics && portByName.metrics.containerPort === w.metricsPort, `${what}: containerPort metrics = ${w.metricsPort}`);
  eq(c.livenessProbe.httpGet.path, "/healthz", `${what}: liveness path`);
  eq(c.readinessProbe.httpGet.path, "/readyz", `${what}: readiness path`);
  eq(c.startupProbe.httpGet.path, "/readyz", `${what}: startup path`);
  for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe]) eq(p.httpGet.port, healthPort(v), `${what}: probe port`);
  ok(portByName[healthPort(v)], `${what}: the probes' port ${healthPort(v)} is a container port`);
  const budget = c.startupProbe.failureThreshold * c.startupProbe.periodSeconds;
  ok(budget >= v.startup.maxSeconds && budget < v.startup.maxSeconds + c.startupProbe.periodSeconds,
     `${what}: startup budget ${budget} s covers startup.maxSeconds ${v.startup.maxSeconds}`);

  // Security.
  const sc = c.securityContext || {};
  eq(sc.readOnlyRootFilesystem, true, `${what}: readOnlyRootFilesystem`);
  eq(sc.allowPrivilegeEscalation, false, `${what}: allowPrivilegeEscalation`);
  eq(spec.securityContext.runAsNonRoot, true, `${what}: runAsNonRoot`);
  ok(spec.securityContext.runAsUser > 0, `${what}: runAsUser non-root`);
  ok((c.volumeMounts || []).some((m) => m.mountPath === "/tmp"), `${what}: writable /tmp`);

  // GPU.
  const gpus = c.resources && c.resources.limits && c.resources.limits[v.gpu.resourceName];
  if (v.gpu.count > 0) eq(gpus, v.gpu.count, `${what}: ${v.gpu.resourceName} limit`);
  else ok(gpus === undefined, `${what}: no GPU requested`);

  // Model volume.
  const vols = Object.fromEntries((spec.volumes || []).map((x) => [x.name, x]));
  const mount = (c.volumeMounts || []).find((m) => m.name === "model");
  const mode = v.model.volume;
  if (mode === "baked") {
    ok(!vols.model && !mount, `${what}: baked model: nothing mounted`);
  } else {
    ok(mount && mount.mountPath === v.model.path && mount.readOnly === true, `${what}: model mounted read-only at ${v.model.path}`);
    if (mode === "pvc") ok(vols.model && vols.model.persistentVolumeClaim && vols.model.persistentVolumeClaim.readOnly === true &&
                           vols.model.persistentVolumeClaim.claimName === v.model.pvc.claimName, `${what}: pvc volume`);
    if (mode === "hostPath") ok(vols.model && vols.model.hostPath && vols.model.hostPath.path === v.model.hostPath.path, `${what}: hostPath volume`);
    if (mode === "initContainer") {
      ok(vols.model && vols.model.emptyDir, `${what}: emptyDir model volume`);
      const ic = (spec.initContainers || [])[0];
      ok(ic && ic.image === v.model.initContainer.image && ic.volumeMounts.some((m) => m.name === "model" && m.mountPath === v.model.path && !m.readOnly),
         `${what}: init container writes the model at ${v.model.path}`);
    }
  }
  if (mode !== "initContainer") ok(!spec.initContainers, `${what}: no init container`);

  // Replicas: KEDA owns them when autoscaling is on.
  if (v.autoscaling.enabled) ok(dep.spec.replicas === undefined, `${what}: no spec.replicas under KEDA`);
  else eq(dep.spec.replicas, v.replicaCount, `${what}: replicas`);

  // Selectors of the other objects match the pods.
  const matches = (sel) => Object.entries(sel || {}).every(([k, x]) => podLabels[k] === x);
  for (const pdb of byKind(objs, "PodDisruptionBudget")) ok(matches(pdb.spec.selector.matchLabels), `${what}: PDB selects the pods`);
  eq(byKind(objs, "PodDisruptionBudget").length, v.podDisruptionBudget.enabled ? 1 : 0, `${what}: PDB count`);
  const svc = byKind(objs, "Service").find((s) => s.metadata.name === dep.metadata.name);
  eq(!!svc, !!v.service.enabled, `${what}: Service present`);
  if (svc) {
    ok(matches(svc.spec.selector), `${what}: Service selects the pods`);
    eq(svc.spec.ports[0].targetPort, healthPort(v), `${what}: Service targets the ${healthPort(v)} port`);
  }
  checkApi(what, objs, v, dep, c, env, matches);
  for (const o of objs)
    ok(o.metadata.labels && o.metadata.labels["app.kubernetes.io/instance"] === "rel", `${what}: ${o.kind} labelled`);

  checkScaling(what, objs, v, dep, env);
  checkMonitoring(what, objs, v, svc, podLabels);
}

// The API: the Service's port resolves, by name, to the container port that
// embedq listens on (EMBEDQ_API_PORT in worker mode, EMBEDQ_PORT in serve
// mode), and so does the Ingress' backend; nothing overrides the port.
function checkApi(what, objs, v, dep, c, env, matches) {
  const name = `${dep.metadata.name}-api`;
  const svc = byKind(objs, "Service").find((s) => s.metadata.name === name);
  const ing = byKind(objs, "Ingress");
  const cport = (c.ports || []).find((p) => p.name === "http-api");
  if (!apiOn(v)) {
    ok(!svc && !cport && !ing.length, `${what}: API off: no API Service, port or Ingress`);
    return;
  }
  const varName = v.mode === "serve" ? "EMBEDQ_PORT" : "EMBEDQ_API_PORT";
  const listen = env[varName] && Number(env[varName].value);
  eq(listen, v.api.port, `${what}: ${varName} = api.port`);
  for (const a of [...(c.command || []), ...(c.args || [])])
    ok(!/^--(api-port|port|host)(=|$)/.test(a), `${what}: command/args do not override the port (${a})`);
  if (!ok(cport, `${what}: container port http-api`)) return;
  eq(cport.containerPort, listen, `${what}: container port http-api = ${varName} (the port embedq listens on)`);
  if (!ok(svc, `${what}: API Service ${name}`)) return;
  ok(matches(svc.spec.selector), `${what}: API Service selects the pods`);
  eq(svc.spec.type, v.api.service.type, `${what}: API Service type`);
  const sp = svc.spec.ports;
  eq(sp.map((p) => p.name), ["http-api"], `${what}: API Service port name`);
  eq(sp[0].port, v.api.service.port, `${what}: API Service port = api.service.port`);
  // targetPort by name or number must land on the port embedq listens on.
  const target = typeof sp[0].targetPort === "string" ? (c.ports.find((p) => p.name === sp[0].targetPort) || {}).containerPort : sp[0].targetPort;
  eq(target, listen, `${what}: API Service targetPort reaches ${varName}`);
  if (!(v.api.ingress && v.api.ingress.enabled)) {
    eq(ing.length, 0, `${what}: no Ingress`);
    return;
  }
  if (!ok(ing.length === 1, `${what}: one Ingress`)) return;
  const spec = ing[0].spec;
  const i = v.api.ingress;
  eq(spec.ingressClassName, i.className || undefined, `${what}: ingressClassName`);
  const canon = (x) => (x === undefined ? x : JSON.parse(JSON.stringify(x, (k, y) => (y && typeof y === "object" && !Array.isArray(y) ? Object.fromEntries(Object.entries(y).sort()) : y))));
  eq(canon(spec.tls), canon(i.tls.length ? i.tls : undefined), `${what}: Ingress tls`);
  eq(spec.rules.map((r) => r.host), i.hosts.length ? i.hosts : [undefined], `${what}: Ingress hosts`);
  for (const r of spec.rules)
    for (const pth of r.http.paths) {
      eq([pth.path, pth.pathType], [i.path, i.pathType], `${what}: Ingress path`);
      const b = pth.backend.service;
      eq(b.name, name, `${what}: Ingress backend = the API Service`);
      ok(sp.some((p) => (b.port.name ? p.name === b.port.name : p.port === b.port.number)), `${what}: Ingress backend port is a port of the API Service`);
    }
}

// A trigger's query names only API metrics of the contract, gauges unless
// through rate()/increase(), summed for the whole release, over this
// release's pods only (another release's pod names do not match).
function checkApiQuery(what, query, dep, custom) {
  const known = Object.fromEntries(CONTRACT.metrics.map((m) => [m.name, m]));
  const used = [...query.matchAll(/\b(embedq_[a-z_]+)\b/g)].map((m) => m[1]);
  ok(used.length > 0, `${what}: query names an embedq metric: ${query}`);
  for (const u of used) {
    const m = known[u] || known[u.replace(/_(bucket|sum|count)$/, "")];
    if (!ok(m, `${what}: query metric ${u} is one the API exports (tests/api_contract.json)`)) continue;
    if (m.type !== "gauge") ok(new RegExp(`(rate|increase)\\(${u}\\b`).test(query), `${what}: ${m.type} ${u} only through rate()/increase()`);
  }
  if (custom) return;
  ok(/^sum\(/.test(query), `${what}: query sums over the pods: ${query}`);
  const ns = query.match(/namespace="([^"]*)"/), pod = query.match(/pod=~"([^"]*)"/);
  eq(ns && ns[1], "ml", `${what}: query scoped to the release namespace`);
  if (ok(pod, `${what}: query scoped to the release's pods`)) {
    const re = new RegExp(`^(?:${pod[1]})$`);
    ok(re.test(`${dep.metadata.name}-5d8f7c9b4-x2x7k`), `${what}: pod regex matches this release's pods`);
    ok(!re.test(`${dep.metadata.name}-query-5d8f7c9b4-x2x7k`) && !re.test(`x${dep.metadata.name}-5d8f7c9b4-x2x7k`),
       `${what}: pod regex matches no other release's pods`);
  }
}

function expectedLagThreshold(a) {
  return a.lagThreshold != null ? a.lagThreshold : Math.ceil(a.messagesPerSecondPerPod * a.targetLagSeconds);
}

function checkScaling(what, objs, v, dep, env) {
  const so = byKind(objs, "ScaledObject")[0];
  const ta = byKind(objs, "TriggerAuthentication")[0];
  const a = v.autoscaling;
  if (!a.enabled) {
    ok(!so && !ta, `${what}: no ScaledObject without autoscaling`);
    return;
  }
  if (!ok(so, `${what}: ScaledObject present`)) return;
  eq(so.spec.scaleTargetRef.name, dep.metadata.name, `${what}: scaleTargetRef`);
  eq(so.spec.minReplicaCount, a.minReplicas, `${what}: minReplicaCount`);
  const worker = v.mode === "worker";
  const max = a.maxReplicas != null ? a.maxReplicas : worker && v.source === "kafka" ? v.kafka.partitions : 4;
  eq(so.spec.maxReplicaCount, max, `${what}: maxReplicaCount (default: partitions)`);
  if (apiOn(v)) ok(so.spec.minReplicaCount >= 1, `${what}: the API's workload does not scale to zero`);
  if (worker && v.source === "kafka" && !v.kafka.keda.allowIdleConsumers && !v.api.enabled)
    ok(so.spec.maxReplicaCount <= v.kafka.partitions, `${what}: maxReplicaCount <= partitions`);
  eq(so.spec.pollingInterval, a.pollingInterval, `${what}: pollingInterval`);
  eq(so.spec.cooldownPeriod, a.cooldownPeriod, `${what}: cooldownPeriod`);
  const beh = so.spec.advanced.horizontalPodAutoscalerConfig.behavior;
  ok(beh.scaleDown.stabilizationWindowSeconds > beh.scaleUp.stabilizationWindowSeconds,
     `${what}: scale-down stabilization (${beh.scaleDown.stabilizationWindowSeconds}) longer than scale-up (${beh.scaleUp.stabilizationWindowSeconds})`);
  if (a.fallback.enabled) {
    ok(so.spec.fallback && so.spec.fallback.replicas >= 1 && so.spec.fallback.replicas <= max, `${what}: fallback replicas within bounds`);
  } else ok(!so.spec.fallback, `${what}: no fallback`);

  for (const tr of so.spec.triggers)
    for (const [k, x] of Object.entries(tr.metadata)) ok(typeof x === "string", `${what}: ${tr.type} trigger metadata ${k} is a string`);
  const wantProm = apiOn(v) && a.prometheus.enabled;
  const wantTypes = [...(worker ? [v.source === "kafka" ? "kafka" : "redis-streams"] : []), ...(wantProm ? ["prometheus"] : [])];
  eq(so.spec.triggers.map((x) => x.type), wantTypes, `${what}: triggers`);
  const prom = so.spec.triggers.find((x) => x.type === "prometheus");
  if (prom) {
    const p = a.prometheus, pm = prom.metadata;
    eq(pm.serverAddress, p.serverAddress, `${what}: prometheus serverAddress`);
    eq(pm.threshold, String(p.threshold), `${what}: prometheus threshold`);
    eq(pm.activationThreshold, String(p.activationThreshold), `${what}: prometheus activationThreshold`);
    ok(!prom.authenticationRef, `${what}: no broker credentials on the prometheus trigger`);
    if (!p.query) ok(pm.query.startsWith(`sum(${p.metric}{`), `${what}: query on autoscaling.prometheus.metric ${p.metric}: ${pm.query}`);
    checkApiQuery(what, pm.query, dep, !!(p.query || p.selector));
  }
  if (!worker) {
    ok(!ta, `${what}: no TriggerAuthentication in serve mode`);
    ok(!(so.metadata.annotations || {})["embedq/lag-threshold"], `${what}: no lag threshold in serve mode`);
    return;
  }
  const t = so.spec.triggers[0];
  const md = t.metadata;
  const lag = String(expectedLagThreshold(a));
  if (v.source === "kafka") {
    eq(t.type, "kafka", `${what}: trigger type`);
    eq(md.lagThreshold, lag, `${what}: lagThreshold = ceil(messagesPerSecondPerPod x targetLagSeconds)`);
    eq(md.activationLagThreshold, String(a.activationLagThreshold), `${what}: activationLagThreshold`);
    eq(md.bootstrapServers, env.EMBEDQ_BROKERS.value, `${what}: bootstrapServers = EMBEDQ_BROKERS`);
    eq(md.topic, env.EMBEDQ_IN_TOPIC.value, `${what}: topic = EMBEDQ_IN_TOPIC`);
    eq(md.consumerGroup, env.EMBEDQ_GROUP.value, `${what}: consumerGroup = EMBEDQ_GROUP`);
    const reset = v.kafka.keda.offsetResetPolicy || v.kafka.config["auto.offset.reset"] || "earliest";
    eq(md.offsetResetPolicy, reset, `${what}: offsetResetPolicy follows the worker's auto.offset.reset`);
    const cfg = env.EMBEDQ_KAFKA_CONFIG ? env.EMBEDQ_KAFKA_CONFIG.value.split(";") : [];
    const proto = v.kafka.sasl.enabled ? (v.kafka.tls.enabled ? "SASL_SSL" : "SASL_PLAINTEXT") : v.kafka.tls.enabled ? "SSL" : null;
    if (proto) ok(cfg.includes(`security.protocol=${proto}`), `${what}: security.protocol=${proto} in EMBEDQ_KAFKA_CONFIG`);
    eq(md.sasl, v.kafka.sasl.enabled ? { PLAIN: "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512" }[v.kafka.sasl.mechanism] : undefined, `${what}: KEDA sasl`);
    eq(md.tls, v.kafka.tls.enabled ? "enable" : undefined, `${what}: KEDA tls`);
    for (const [k, x] of Object.entries(v.kafka.config)) ok(cfg.includes(`${k}=${x}`), `${what}: kafka.config ${k} in EMBEDQ_KAFKA_CONFIG`);
  } else {
    eq(t.type, "redis-streams", `${what}: trigger type`);
    eq(md.lagCount, lag, `${what}: lagCount = ceil(messagesPerSecondPerPod x targetLagSeconds)`);
    eq(md.activationLagCount, String(a.activationLagThreshold), `${what}: activationLagCount`);
    eq(md.address, v.redis.address, `${what}: address`);
    eq(md.stream, env.EMBEDQ_IN_STREAM.value, `${what}: stream = EMBEDQ_IN_STREAM`);
    eq(md.consumerGroup, env.EMBEDQ_GROUP.value, `${what}: consumerGroup = EMBEDQ_GROUP`);
    eq(md.databaseIndex, String(v.redis.db), `${what}: databaseIndex`);
    if (!v.redis.auth.urlKey) {
      const url = env.EMBEDQ_REDIS_URL.value;
      ok(url.endsWith(`@${v.redis.address}/${v.redis.db}`) || url === `redis://${v.redis.address}/${v.redis.db}`,
         `${what}: EMBEDQ_REDIS_URL ${url} points at ${v.redis.address}/${v.redis.db}`);
    }
  }
  // Authentication: the trigger and the worker read the same Secrets.
  const needAuth = v.source === "kafka" ? v.kafka.sasl.enabled || v.kafka.tls.enabled : !!v.redis.auth.secretName;
  eq(!!ta, needAuth, `${what}: TriggerAuthentication present`);
  eq(!!t.authenticationRef, needAuth, `${what}: authenticationRef present`);
  if (ta && t.authenticationRef) {
    eq(t.authenticationRef.name, ta.metadata.name, `${what}: authenticationRef names the TriggerAuthentication`);
    const params = Object.fromEntries(ta.spec.secretTargetRef.map((r) => [r.parameter, r]));
    const ref = (n) => env[n] && env[n].valueFrom && env[n].valueFrom.secretKeyRef;
    if (v.source === "kafka" && v.kafka.sasl.enabled) {
      for (const [p, n] of [["username", "EMBEDQ_KAFKA_SASL_USERNAME"], ["password", "EMBEDQ_KAFKA_SASL_PASSWORD"]])
        ok(params[p] && ref(n) && params[p].name === ref(n).name && params[p].key === ref(n).key, `${what}: KEDA ${p} = worker ${n}`);
    }
    if (v.source === "kafka" && v.kafka.tls.enabled) {
      ok(params.ca && params.ca.name === v.kafka.tls.secretName && params.ca.key === v.kafka.tls.caKey, `${what}: KEDA ca`);
      eq(!!params.cert, !!v.kafka.tls.certKey, `${what}: KEDA cert`);
      const vol = dep.spec.template.spec.volumes.find((x) => x.name === "kafka-tls");
      ok(vol && vol.secret.secretName === v.kafka.tls.secretName, `${what}: TLS secret mounted for the worker`);
    }
    if (v.source === "redis" && v.redis.auth.urlKey)
      ok(params.password && params.password.name === v.redis.auth.secretName && !env.EMBEDQ_REDIS_PASSWORD && !env.EMBEDQ_REDIS_USERNAME,
         `${what}: urlKey: KEDA password from the Secret, the worker's credentials only in its URL`);
    else if (v.source === "redis")
      ok(params.password && ref("EMBEDQ_REDIS_PASSWORD") && params.password.name === ref("EMBEDQ_REDIS_PASSWORD").name && params.password.key === ref("EMBEDQ_REDIS_PASSWORD").key, `${what}: KEDA password = worker EMBEDQ_REDIS_PASSWORD`);
  }
}

function checkMonitoring(what, objs, v, svc, podLabels) {
  const m = v.monitoring;
  const sm = byKind(objs, "ServiceMonitor"), pm = byKind(objs, "PodMonitor");
  if (!m.monitor.enabled) ok(!sm.length && !pm.length, `${what}: no monitor`);
  else if (m.monitor.kind === "ServiceMonitor") {
    eq(sm.length, 1, `${what}: one ServiceMonitor`);
    if (sm[0] && svc) {
      ok(Object.entries(sm[0].spec.selector.matchLabels).every(([k, x]) => svc.metadata.labels[k] === x), `${what}: ServiceMonitor selects the Service`);
      eq(sm[0].spec.endpoints[0].port, "metrics", `${what}: ServiceMonitor port`);
      ok(svc.spec.ports.some((p) => p.name === sm[0].spec.endpoints[0].port), `${what}: ServiceMonitor port is a port of the Service`);
    }
  } else {
    eq(pm.length, 1, `${what}: one PodMonitor`);
    if (pm[0]) {
      ok(Object.entries(pm[0].spec.selector.matchLabels).every(([k, x]) => podLabels[k] === x), `${what}: PodMonitor selects the pods`);
      eq(pm[0].spec.podMetricsEndpoints[0].port, healthPort(v), `${what}: PodMonitor port (the container's /metrics port)`);
    }
  }
  eq(byKind(objs, "PrometheusRule").length, m.prometheusRule.enabled ? 1 : 0, `${what}: PrometheusRule count`);
  eq(byKind(objs, "ConfigMap").length, m.dashboard.enabled ? 1 : 0, `${what}: dashboard ConfigMap count`);
}

function caseValues(extra, files = []) {
  let v = defaults();
  for (const f of files) v = merge(v, loadYaml(f));
  return merge(v, extra || {});
}

// ---------------------------------------------------------------- variants

const SASL_TLS = {
  kafka: {
    sasl: { enabled: true, mechanism: "SCRAM-SHA-512", secretName: "kafka-user" },
    tls: { enabled: true, secretName: "kafka-ca", certKey: "tls.crt", keyKey: "tls.key" },
    config: { "auto.offset.reset": "latest", "linger.ms": 10 },
    configSecret: { name: "kafka-extra", key: "config" },
  },
};
// The API's variants need a Prometheus for their trigger.
const PROM = { autoscaling: { prometheus: { serverAddress: "http://prometheus-operated.monitoring.svc:9090" } } };
const SERVE = merge(PROM, { mode: "serve" });
export const VARIANTS = {
  "kafka-default": {},
  "api-worker-kafka": merge(PROM, { api: { enabled: true } }),
  "api-worker-redis": merge(PROM, { source: "redis", api: { enabled: true, port: 8000, service: { port: 80, type: "LoadBalancer" } } }),
  "api-worker-more-replicas": merge(PROM, { api: { enabled: true }, autoscaling: { maxReplicas: 10 } }),
  "api-worker-prometheus-off": { api: { enabled: true }, autoscaling: { prometheus: { enabled: false } } },
  "api-worker-no-autoscaling": { api: { enabled: true, preStopSleepSeconds: 0 }, autoscaling: { enabled: false }, replicaCount: 2 },
  "api-worker-ingress": merge(PROM, {
    api: { enabled: true, ingress: { enabled: true, className: "nginx", hosts: ["embed.example.com", "embed.internal"],
                                     annotations: { "nginx.ingress.kubernetes.io/proxy-body-size": "8m" },
                                     tls: [{ secretName: "embed-tls", hosts: ["embed.example.com"] }] } },
  }),
  "serve-default": SERVE,
  "serve-queue-inputs": merge(SERVE, { autoscaling: { prometheus: { metric: "embedq_api_queue_inputs", threshold: 32, selector: 'job="embedq-query"' } } }),
  "serve-custom-query": merge(SERVE, { autoscaling: { prometheus: { query: 'sum(rate(embedq_api_requests_total{namespace="ml"}[1m]))', threshold: 50.5, extraMetadata: { unsafeSsl: "true" } } } }),
  "serve-ingress-any-host": merge(SERVE, { api: { ingress: { enabled: true } } }),
  "serve-no-autoscaling": { mode: "serve", autoscaling: { enabled: false }, replicaCount: 2 },
  "serve-podmonitor": merge(SERVE, { service: { enabled: false }, monitoring: { monitor: { enabled: true, kind: "PodMonitor" } } }),
  "serve-servicemonitor": merge(SERVE, { api: { servedModelName: "qwen3-embed", preStopSleepSeconds: 0, port: 8000 }, monitoring: { monitor: { enabled: true } } }),
  "serve-kafka-values-unused": merge(SERVE, SASL_TLS),
  "redis-default": { source: "redis" },
  "scale-to-zero-kafka": { autoscaling: { minReplicas: 0, activationLagThreshold: 10 } },
  "scale-to-zero-redis": { source: "redis", autoscaling: { minReplicas: 0, activationLagThreshold: 5 } },
  "explicit-lag-threshold": { autoscaling: { lagThreshold: 777, maxReplicas: 3 } },
  "fractional-throughput": { autoscaling: { messagesPerSecondPerPod: 2.5, targetLagSeconds: 45 } },
  "no-autoscaling": { autoscaling: { enabled: false }, replicaCount: 3 },
  "no-fallback": { autoscaling: { fallback: { enabled: false } } },
  "model-pvc-subpath": { model: { volume: "pvc", pvc: { claimName: "models", subPath: "qwen3-0.6b" } } },
  "model-hostpath": { model: { volume: "hostPath", hostPath: { path: "/var/lib/models/qwen3" } } },
  "model-initcontainer": {
    model: { volume: "initContainer", initContainer: { image: "registry.example/model-fetch:1", command: ["sh", "-c", "cp -r /src/. \"$MODEL_DIR\""], sizeLimit: "4Gi" } },
  },
  "model-baked": { model: { volume: "baked" }, image: { repository: "registry.example/embedq-qwen3-0.6b", tag: "2" }, args: ["--max-wait-ms", "10"] },
  "monitoring-servicemonitor": {
    monitoring: { monitor: { enabled: true, labels: { release: "kube-prometheus-stack" } }, prometheusRule: { enabled: true }, dashboard: { enabled: true } },
  },
  "monitoring-podmonitor": {
    service: { enabled: false },
    monitoring: { monitor: { enabled: true, kind: "PodMonitor" }, prometheusRule: { enabled: true, selector: 'job="embedq"' }, dashboard: { enabled: true } },
  },
  "monitoring-off": { service: { enabled: false }, podDisruptionBudget: { enabled: false } },
  "kafka-sasl-tls": SASL_TLS,
  "kafka-sasl-plain-only": { kafka: { sasl: { enabled: true, mechanism: "PLAIN", secretName: "kafka-user" } } },
  "kafka-tls-only": { kafka: { tls: { enabled: true, secretName: "kafka-ca" } } },
  "redis-password": { source: "redis", redis: { address: "redis-master.data:6380", db: 2, auth: { secretName: "redis-auth" } } },
  "redis-acl-user": { source: "redis", redis: { auth: { secretName: "redis-auth", usernameKey: "username" } } },
  "redis-url-secret": { source: "redis", redis: { auth: { secretName: "redis-auth", urlKey: "url" } } },
  "grace-explicit": { terminationGracePeriodSeconds: 120, worker: { drainTimeout: 90 } },
  "cpu-device": { worker: { device: "cpu", threads: 4 }, gpu: { count: 0 }, tolerations: [] },
  "pdb-min-available": { podDisruptionBudget: { minAvailable: "50%" } },
  "extra-env": {
    extraEnv: [{ name: "HF_HOME", value: "/tmp/hf" }, { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
    envFrom: [{ configMapRef: { name: "embedq-extra" } }],
    runtimeClassName: "nvidia", priorityClassName: "gpu-batch",
    nodeSelector: { "nvidia.com/gpu.product": "NVIDIA-L4" },
  },
};

// ---------------------------------------------------------------- cases

const cases = {
  lint() {
    const r = helm(["lint", "--strict", chartDir]);
    ok(r.status === 0, `helm lint --strict (defaults): ${r.stdout}${r.stderr}`);
    for (const p of profiles())
      for (const source of ["kafka", "redis"]) {
        const r2 = helm(["lint", "--strict", chartDir, "-f", p, "--set", `source=${source}`]);
        ok(r2.status === 0, `helm lint --strict ${path.basename(p)} ${source}: ${r2.stdout}${r2.stderr}`);
      }
    const prom = "autoscaling.prometheus.serverAddress=http://prometheus:9090";
    for (const set of [["api.enabled=true", prom], ["mode=serve", prom], ["mode=serve", "autoscaling.enabled=false"]]) {
      const r4 = helm(["lint", "--strict", chartDir, ...set.flatMap((s) => ["--set", s])]);
      ok(r4.status === 0, `helm lint --strict ${set.join(",")}: ${r4.stdout}${r4.stderr}`);
    }
    // The schema's choice of trigger metrics is the contract's gauges.
    const schema = JSON.parse(fs.readFileSync(path.join(chartDir, "values.schema.json"), "utf8"));
    const gauges = CONTRACT.metrics.filter((m) => m.type === "gauge").map((m) => m.name).sort();
    eq([...schema.properties.autoscaling.properties.prometheus.properties.metric.enum].sort(), gauges,
       "autoscaling.prometheus.metric choices = the API's gauges in tests/api_contract.json");
    ok(gauges.includes(defaults().autoscaling.prometheus.metric), "the default trigger metric is one of them");
    const pkg = tmpdir();
    const r3 = helm(["package", chartDir, "-d", pkg]);
    ok(r3.status === 0 && fs.readdirSync(pkg).some((f) => f.endsWith(".tgz")), `helm package: ${r3.stderr}`);

    // NOTES.txt renders (helm template skips it: render a copy of the chart
    // in which the notes are the body of a ConfigMap).
    const copy = path.join(tmpdir(), "embedq");
    fs.cpSync(chartDir, copy, { recursive: true });
    const notes = fs.readFileSync(path.join(copy, "templates", "NOTES.txt"), "utf8");
    fs.writeFileSync(path.join(copy, "templates", "_notes_test.tpl"), `{{- define "test.notes" -}}\n${notes}{{- end -}}\n`);
    fs.writeFileSync(path.join(copy, "templates", "zz-notes-test.yaml"),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n{{ include "test.notes" . | indent 4 }}\n');
    const notesFor = (set) => {
      const r = helm(["template", "rel", copy, "-n", "ml", "--show-only", "templates/zz-notes-test.yaml", ...set.flatMap((s) => ["--set", s])]);
      ok(r.status === 0, `NOTES.txt renders with ${set.join(",") || "defaults"}: ${r.stderr}`);
      return r.status === 0 ? YAML.parse(r.stdout).data.notes : "";
    };
    // docs/deploy.md's values table names every value of values.yaml.
    const deploy = fs.readFileSync(path.join(root, "docs", "deploy.md"), "utf8");
    const opaque = new Set(["config", "extraMetadata", "labels", "annotations", "nodeSelector", "affinity", "podAnnotations",
                            "podLabels", "resources", "behavior", "podSecurityContext", "securityContext", "strategy"]);
    const leaves = [];
    const walk = (o, p) => {
      if (o && typeof o === "object" && !Array.isArray(o) && Object.keys(o).length && !opaque.has(p.split(".").pop()))
        for (const [k, x] of Object.entries(o)) walk(x, p ? `${p}.${k}` : k);
      else leaves.push(p);
    };
    walk(defaults(), "");
    for (const l of leaves) ok(deploy.includes(`| \`${l}\` |`), `docs/deploy.md values table lists ${l}`);
    const n1 = notesFor([]);
    ok(n1.includes("one replica per 3000 records") && n1.includes("ESTIMATE"), `NOTES: lag threshold and its estimate: ${n1}`);
    ok(n1.includes("terminationGracePeriodSeconds 45"), "NOTES: grace period");
    ok(notesFor(["autoscaling.minReplicas=0"]).includes("Scale to zero is on"), "NOTES: scale-to-zero cold start");
    ok(notesFor(["source=redis", "autoscaling.enabled=false"]).includes("Autoscaling is off"), "NOTES: no autoscaling");
    ok(!n1.includes("/v1"), "NOTES: no API without api.enabled");
    const n2 = notesFor(["api.enabled=true", prom]);
    ok(n2.includes("base_url: http://rel-embedq-api.ml.svc:8080/v1") && n2.includes("on the API's load") && n2.includes("5 s preStop sleep") &&
       n2.includes("terminationGracePeriodSeconds 50"), `NOTES: worker with the API: ${n2}`);
    const n3 = notesFor(["mode=serve", prom, "api.port=8000", "api.ingress.enabled=true", "api.ingress.hosts[0]=embed.example.com"]);
    ok(n3.includes("serve: the API only") && !n3.includes("Input:") && n3.includes("container port 8000") && n3.includes("embed.example.com, path /v1") &&
       n3.includes("sum(embedq_api_requests_in_flight{") && n3.includes("Health and metrics on port 8000"), `NOTES: serve mode: ${n3}`);
  },

  profiles() {
    const ps = profiles();
    eq(ps.length, 9, "nine profiles (A10, L4, H100 x 0.6B, 4B, 8B)");
    for (const gpu of ["a10", "l4", "h100"])
      for (const m of ["0.6b", "4b", "8b"])
        ok(ps.some((p) => path.basename(p) === `${gpu}-${m}.yaml`), `profile ${gpu}-${m}.yaml exists`);
    const gpuMem = { a10: 24, l4: 24, h100: 80 }, weights = { "0.6b": 1.2, "4b": 8, "8b": 16 };
    for (const p of ps) {
      const base = path.basename(p, ".yaml");
      const text = fs.readFileSync(p, "utf8");
      ok(/ESTIMATE/.test(text) && /embedq bench/.test(text), `${base}: throughput marked as an estimate to replace with embedq bench`);
      const [gpu, model] = base.split("-");
      const pv = loadYaml(p);
      ok(weights[model] < gpuMem[gpu], `${base}: weights fit the GPU`);
      ok(pv.model.name.toLowerCase().endsWith(model), `${base}: model name ${pv.model.name}`);
      // Drain: what is in flight must finish within the drain timeout at the estimated rate.
      ok(pv.worker.maxInFlight / pv.autoscaling.messagesPerSecondPerPod <= pv.worker.drainTimeout,
         `${base}: maxInFlight ${pv.worker.maxInFlight} drains within ${pv.worker.drainTimeout} s at ${pv.autoscaling.messagesPerSecondPerPod} msg/s`);
      // Host memory (docs/worker.md, "Memory"): the checkpoint while it loads, the
      // messages in flight (their charge, with a quarter for the allocator), Kafka's
      // prefetch (64 MiB) and 2 GiB for the rest must fit the memory limit.
      const units = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
      const lim = String(pv.resources.limits.memory).match(/^(\d+)(Ki|Mi|Gi)$/);
      if (ok(lim, `${base}: resources.limits.memory ${pv.resources.limits.memory} in Ki/Mi/Gi`)) {
        const limit = Number(lim[1]) * units[lim[2]];
        const bytes = pv.worker.maxInFlightBytes ?? defaults().worker.maxInFlightBytes;
        const need = weights[model] * 1e9 + 1.25 * bytes + 64 * 2 ** 20 + 2 * 2 ** 30;
        ok(limit >= need, `${base}: memory limit ${pv.resources.limits.memory} >= ${(need / 2 ** 30).toFixed(1)} GiB (checkpoint + 1.25 x maxInFlightBytes + Kafka prefetch + 2 GiB)`);
      }
      // docs/deploy.md's profiles table says the same.
      const row = fs.readFileSync(path.join(root, "docs", "deploy.md"), "utf8").split("\n").find((l) => l.startsWith(`| \`${base}\` |`));
      if (ok(row, `docs/deploy.md profiles table has ${base}`)) {
        const cells = row.split("|").map((x) => x.trim());
        eq([cells[4], cells[6], cells[7], cells[8], cells[9]].map(Number),
           [pv.worker.batchTokens, pv.autoscaling.messagesPerSecondPerPod, pv.autoscaling.messagesPerSecondPerPod * pv.autoscaling.targetLagSeconds,
            pv.worker.maxInFlight, pv.worker.drainTimeout], `${base}: docs/deploy.md row (batchTokens, msg/s, lagThreshold, maxInFlight, drainTimeout)`);
      }
      for (const source of ["kafka", "redis", "serve"]) {
        const what = `${base}/${source}`;
        const extra = source === "serve" ? SERVE : { source };
        const objs = renderOk(what, { files: [p], values: extra });
        if (objs) checkRelease(what, objs, caseValues(extra, [p]));
      }
    }
  },

  variants() {
    for (const [name, extra] of Object.entries(VARIANTS)) {
      const objs = renderOk(name, { values: extra });
      if (!objs) continue;
      const v = caseValues(extra);
      checkRelease(name, objs, v);
      const dep = byKind(objs, "Deployment")[0];
      const c = dep.spec.template.spec.containers[0];
      const env = envOf(c);
      const so = byKind(objs, "ScaledObject")[0];
      // Facts particular to a variant.
      if (name.startsWith("scale-to-zero")) eq(so.spec.minReplicaCount, 0, `${name}: scales to zero`);
      if (name === "explicit-lag-threshold") eq(so.spec.triggers[0].metadata.lagThreshold, "777", `${name}: explicit lagThreshold`);
      if (name === "fractional-throughput") eq(so.spec.triggers[0].metadata.lagThreshold, "113", `${name}: ceil(2.5 x 45) = 113`);
      if (name === "kafka-default") eq(so.spec.triggers[0].metadata.lagThreshold, "3000", `${name}: ceil(100 x 30)`);
      if (name === "kafka-default") eq(so.spec.maxReplicaCount, 6, `${name}: maxReplicaCount = kafka.partitions`);
      if (name === "redis-default") eq(so.spec.maxReplicaCount, 4, `${name}: redis maxReplicaCount default`);
      if (name === "kafka-sasl-tls") {
        const cfg = env.EMBEDQ_KAFKA_CONFIG.value;
        eq(cfg, "security.protocol=SASL_SSL;sasl.mechanism=SCRAM-SHA-512;" +
           "ssl.ca.location=/etc/embedq/kafka-tls/ca.crt;ssl.certificate.location=/etc/embedq/kafka-tls/tls.crt;ssl.key.location=/etc/embedq/kafka-tls/tls.key;" +
           "auto.offset.reset=latest;linger.ms=10;$(KAFKA_EXTRA_CONFIG)", `${name}: EMBEDQ_KAFKA_CONFIG`);
        eq(so.spec.triggers[0].metadata.offsetResetPolicy, "latest", `${name}: KEDA offsetResetPolicy follows auto.offset.reset`);
      }
      if (name === "kafka-default") ok(!env.EMBEDQ_KAFKA_CONFIG, `${name}: no EMBEDQ_KAFKA_CONFIG without settings`);
      if (name === "redis-default") eq(env.EMBEDQ_REDIS_URL.value, "redis://redis:6379/0", `${name}: EMBEDQ_REDIS_URL`);
      if (name === "redis-password") eq(env.EMBEDQ_REDIS_URL.value, "redis://redis-master.data:6380/2", `${name}: EMBEDQ_REDIS_URL`);
      if (name === "redis-acl-user") eq(env.EMBEDQ_REDIS_URL.value, "redis://redis:6379/0", `${name}: EMBEDQ_REDIS_URL`);
      if (name === "redis-acl-user") ok(env.EMBEDQ_REDIS_USERNAME && env.EMBEDQ_REDIS_USERNAME.valueFrom.secretKeyRef, `${name}: EMBEDQ_REDIS_USERNAME from the Secret`);
      if (name === "redis-url-secret") eq(env.EMBEDQ_REDIS_URL.valueFrom, { secretKeyRef: { name: "redis-auth", key: "url" } }, `${name}: EMBEDQ_REDIS_URL from the Secret`);
      if (v.source === "redis") eq(env.EMBEDQ_CONSUMER.valueFrom, { fieldRef: { fieldPath: "metadata.name" } }, `${name}: consumer name = pod name`);
      if (name === "grace-explicit") eq(dep.spec.template.spec.terminationGracePeriodSeconds, 120, `${name}: explicit grace`);
      if (name === "no-autoscaling") eq(dep.spec.replicas, 3, `${name}: replicas`);
      if (name === "model-initcontainer") eq(dep.spec.template.spec.volumes.find((x) => x.name === "model").emptyDir.sizeLimit, "4Gi", `${name}: emptyDir size`);
      if (name === "model-baked") eq(c.image, "registry.example/embedq-qwen3-0.6b:2", `${name}: image`);
      if (name === "model-baked") eq(c.args, ["--max-wait-ms", "10"], `${name}: args`);
      if (name !== "model-baked") ok(!c.args, `${name}: no args`);
      if (name === "api-worker-redis") eq([byKind(objs, "Service").find((s) => s.metadata.name === "rel-embedq-api").spec.ports[0].port, c.ports.find((p) => p.name === "http-api").containerPort], [80, 8000], `${name}: Service 80 -> container 8000`);
      if (name === "api-worker-more-replicas") eq(so.spec.maxReplicaCount, 10, `${name}: more replicas than partitions with the API on`);
      if (name === "api-worker-ingress") eq(byKind(objs, "Ingress")[0].metadata.annotations, { "nginx.ingress.kubernetes.io/proxy-body-size": "8m" }, `${name}: Ingress annotations`);
      if (name === "serve-default") eq(dep.spec.template.spec.terminationGracePeriodSeconds, 50, `${name}: grace = 5 s preStop + 30 s drain + 15 s`);
      if (name === "serve-default") eq(so.spec.triggers[0].metadata.query, 'sum(embedq_api_requests_in_flight{namespace="ml", pod=~"rel-embedq-[a-z0-9]+-[a-z0-9]+"})', `${name}: query`);
      if (name === "serve-queue-inputs") eq(so.spec.triggers[0].metadata.query, 'sum(embedq_api_queue_inputs{job="embedq-query"})', `${name}: query with a custom selector`);
      if (name === "serve-custom-query") eq([so.spec.triggers[0].metadata.threshold, so.spec.triggers[0].metadata.unsafeSsl], ["50.5", "true"], `${name}: threshold and extra metadata`);
      if (name === "serve-servicemonitor") eq([env.EMBEDQ_SERVED_MODEL_NAME.value, dep.spec.template.spec.terminationGracePeriodSeconds], ["qwen3-embed", 45], `${name}: served name, grace without preStop`);
      if (name === "serve-kafka-values-unused") ok(!dep.spec.template.spec.volumes.some((x) => x.name === "kafka-tls") && !byKind(objs, "TriggerAuthentication").length && dep.metadata.labels["embedq/source"] === undefined,
                                                    `${name}: no queue volume, TriggerAuthentication or source label in serve mode`);
      if (name === "model-pvc-subpath") eq(c.volumeMounts.find((m) => m.name === "model").subPath, "qwen3-0.6b", `${name}: subPath`);
      if (name === "extra-env") {
        ok(env.HF_HOME && env.NODE_NAME, `${name}: extraEnv appended`);
        eq(c.envFrom, [{ configMapRef: { name: "embedq-extra" } }], `${name}: envFrom`);
        eq(dep.spec.template.spec.runtimeClassName, "nvidia", `${name}: runtimeClassName`);
      }
      if (name === "monitoring-servicemonitor") {
        eq(byKind(objs, "ServiceMonitor")[0].metadata.labels.release, "kube-prometheus-stack", `${name}: monitor labels`);
        const cm = byKind(objs, "ConfigMap")[0];
        eq(cm.metadata.labels.grafana_dashboard, "1", `${name}: grafana sidecar label`);
        eq(cm.data["embedq.json"], fs.readFileSync(path.join(chartDir, "dashboards", "embedq.json"), "utf8").replace(/\n$/, ""),
           `${name}: ConfigMap carries dashboards/embedq.json`);
        const rule = byKind(objs, "PrometheusRule")[0];
        const alerts = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
        eq(alerts, ["EmbedqLagGrowing", "EmbedqDeadLetterRateHigh", "EmbedqPodNotReady", "EmbedqEngineErrors", "EmbedqBrokerErrors", "EmbedqPartitionStuck"], `${name}: alerts`);
        for (const r of rule.spec.groups[0].rules) ok(r.expr.includes('namespace="ml"'), `${name}: ${r.alert} scoped to the release namespace`);
      }
      if (name === "monitoring-podmonitor")
        for (const r of byKind(objs, "PrometheusRule")[0].spec.groups[0].rules) ok(r.expr.includes('job="embedq"'), `${name}: custom selector`);
    }
  },

  // Bad values fail at render time, naming the setting.
  negative() {
    const bad = [
      [{ worker: { batchTokens: 0 } }, "worker.batchTokens"],
      [{ worker: { batchToken: 8192 } }, "batchToken"],
      [{ worker: { device: "gpu" } }, "worker.device"],
      [{ worker: { outputFormat: "parquet" } }, "worker.outputFormat"],
      [{ worker: { metricsPort: 0 } }, "worker.metricsPort"],
      [{ worker: { drainTimeout: 0 } }, "worker.drainTimeout"],
      [{ source: "nats" }, "source"],
      [{ consumerGroup: "" }, "consumerGroup"],
      [{ terminationGracePeriodSeconds: 30 }, "terminationGracePeriodSeconds"],
      [{ terminationGracePeriodSeconds: 60, worker: { drainTimeout: 90 } }, "terminationGracePeriodSeconds"],
      [{ model: { pvc: { claimName: "" } } }, "model.pvc.claimName"],
      [{ model: { volume: "hostPath" } }, "model.hostPath.path"],
      [{ model: { volume: "initContainer" } }, "model.initContainer.image"],
      [{ model: { volume: "initContainer", initContainer: { image: "x" } } }, "model.initContainer.command"],
      [{ model: { volume: "s3" } }, "model.volume"],
      [{ model: { path: "model" } }, "model.path"],
      [{ kafka: { sasl: { enabled: true } } }, "kafka.sasl.secretName"],
      [{ kafka: { sasl: { enabled: true, secretName: "s", mechanism: "GSSAPI" } } }, "kafka.sasl.mechanism"],
      [{ kafka: { tls: { enabled: true } } }, "kafka.tls.secretName"],
      [{ kafka: { tls: { enabled: true, secretName: "s", certKey: "tls.crt" } } }, "kafka.tls.certKey"],
      [{ kafka: { config: { "sasl.password": "hunter2" } } }, "kafka.config.sasl.password"],
      [{ kafka: { config: { "client.rack": "a;b" } } }, "kafka.config.client.rack"],
      [{ kafka: { config: { "auto.offset.reset": "error" } } }, "auto.offset.reset"],
      [{ kafka: { partitions: 0 } }, "kafka.partitions"],
      [{ kafka: { brokers: "" } }, "kafka.brokers"],
      [{ autoscaling: { maxReplicas: 12 } }, "autoscaling.maxReplicas"],
      [{ autoscaling: { minReplicas: 5, maxReplicas: 4 } }, "autoscaling.maxReplicas"],
      [{ autoscaling: { lagThreshold: 0 } }, "autoscaling.lagThreshold"],
      [{ autoscaling: { messagesPerSecondPerPod: 0 } }, "autoscaling.messagesPerSecondPerPod"],
      [{ autoscaling: { fallback: { replicas: 9 } } }, "autoscaling.fallback.replicas"],
      [{ source: "redis", redis: { address: "redis" } }, "redis.address"],
      [{ source: "redis", redis: { claimIntervalMs: 10 } }, "redis.claimIntervalMs"],
      [{ monitoring: { monitor: { enabled: true } }, service: { enabled: false } }, "service.enabled"],
      [{ monitoring: { monitor: { enabled: true, kind: "Probe" } } }, "monitoring.monitor.kind"],
      [{ monitoring: { prometheusRule: { lagGrowing: { for: "15 minutes" } } } }, "monitoring.prometheusRule.lagGrowing.for"],
      [{ startup: { maxSeconds: 0 } }, "startup.maxSeconds"],
      [{ gpu: { count: -1 } }, "gpu.count"],
      [{ extraEnv: [{ value: "x" }] }, "extraEnv"],
      [{ mode: "both" }, "mode"],
      [{ api: { port: 0 } }, "api.port"],
      [{ api: { enabled: true, port: 9090 }, ...PROM }, "api.port"],
      [{ api: { enabled: true } }, "autoscaling.prometheus.serverAddress"],
      [{ mode: "serve" }, "autoscaling.prometheus.serverAddress"],
      [{ mode: "serve", autoscaling: { prometheus: { enabled: false } } }, "autoscaling.prometheus.enabled"],
      [merge(SERVE, { autoscaling: { minReplicas: 0 } }), "autoscaling.minReplicas"],
      [merge(PROM, { api: { enabled: true }, autoscaling: { minReplicas: 0 } }), "autoscaling.minReplicas"],
      [merge(SERVE, { autoscaling: { prometheus: { metric: "embedq_api_requests" } } }), "autoscaling.prometheus.metric"],
      [merge(SERVE, { autoscaling: { prometheus: { threshold: 0 } } }), "autoscaling.prometheus.threshold"],
      [merge(SERVE, { autoscaling: { prometheus: { serverAddress: "prometheus:9090" } } }), "autoscaling.prometheus.serverAddress"],
      [{ api: { ingress: { enabled: true } } }, "api.ingress.enabled"],
      [merge(SERVE, { api: { ingress: { enabled: true, path: "v1" } } }), "api.ingress.path"],
      [merge(SERVE, { api: { ingress: { enabled: true, tls: [{ hosts: ["a"] }] } } }), "secretName"],
      [merge(SERVE, { args: ["--port", "9000"] }), "--port"],
      [merge(PROM, { api: { enabled: true }, args: ["--api-port=9000"] }), "--api-port"],
      [merge(SERVE, { terminationGracePeriodSeconds: 35 }), "api.preStopSleepSeconds"],
      [{ api: { servce: {} } }, "servce"],
      [{ api: { service: { type: "ExternalName" } } }, "api.service.type"],
    ];
    for (const [values, setting] of bad) {
      const r = render({ values });
      const msg = (r.stderr + r.stdout).replace(/\s+/g, " ");
      ok(r.status !== 0, `${JSON.stringify(values)}: render should fail`);
      ok(r.status !== 0 && msg.includes(setting), `${JSON.stringify(values)}: the error names '${setting}': ${msg.slice(0, 300)}`);
    }
  },

  // Every metric and label that the dashboard and the alerts use is one the
  // worker documents (docs/metrics.md); rules pass promtool where installed.
  monitoring() {
    const doc = fs.readFileSync(path.join(root, "docs", "metrics.md"), "utf8");
    const section = doc.split("## Worker metrics")[1] || "";
    const known = {};
    for (const line of section.split("\n")) {
      const m = line.match(/^\|\s*`(embedq_[a-z_]+)`(?:,\s*`(embedq_[a-z_]+)`)?\s*\|\s*([a-z ()]+?)\s*\|\s*([^|]*)\|/);
      if (!m) continue;
      const labels = [...m[4].matchAll(/`([a-z_]+)`/g)].map((x) => x[1]);
      for (const n of [m[1], m[2]].filter(Boolean)) known[n] = { type: m[3].split(" ")[0], labels };
    }
    ok(Object.keys(known).length >= 10, `docs/metrics.md lists the worker metrics (${Object.keys(known).length} found)`);
    if (known.embedq_partition_lag) known.embedq_partition_lag.labels.push("stream"); // Redis (worker/cmd_worker.c)
    const targetLabels = new Set(["namespace", "pod", "job", "instance", "container", "service", "endpoint"]);
    const checkExpr = (what, expr) => {
      const used = [...expr.matchAll(/\b(embedq_[a-z_]+)\b/g)].map((m) => m[1]);
      ok(used.length > 0, `${what}: uses an embedq metric`);
      const allowed = new Set(targetLabels);
      for (const u of used) {
        const base = u.replace(/_(bucket|sum|count)$/, "");
        const k = known[u] || (known[base] && known[base].type === "histogram" ? known[base] : null);
        ok(k, `${what}: metric ${u} is exported (docs/metrics.md)`);
        if (k) k.labels.forEach((l) => allowed.add(l));
        if (u.endsWith("_bucket")) allowed.add("le");
        if (known[base] && known[base].type === "counter" || /_total$/.test(u))
          ok(new RegExp(`(rate|increase)\\(${u}\\b`).test(expr), `${what}: counter ${u} is only used through rate()/increase()`);
      }
      const labelsUsed = [
        ...[...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(",").map((s) => s.trim()).filter(Boolean)),
        ...[...expr.matchAll(/[{,]\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]),
      ];
      for (const l of labelsUsed) ok(allowed.has(l), `${what}: label '${l}' exists on ${used.join(", ")}`);
    };
    // Dashboard: the committed JSON is the generator's output.
    const py = which("python3");
    if (py) {
      const r = spawnSync(py, [path.join(here, "tools", "make_dashboard.py"), "--check"], { encoding: "utf8" });
      ok(r.status === 0, `dashboards/embedq.json = tools/make_dashboard.py output: ${r.stdout}${r.stderr}`);
    }
    const dashText = fs.readFileSync(path.join(chartDir, "dashboards", "embedq.json"), "utf8");
    let dash = null;
    try { dash = JSON.parse(dashText); } catch (e) { ok(false, `dashboard JSON parses: ${e.message}`); }
    if (dash) {
      ok(dash.uid && dash.title && Array.isArray(dash.panels) && dash.panels.length >= 8, "dashboard has panels");
      const titles = dash.panels.map((p) => p.title.toLowerCase()).join(" | ");
      for (const w of ["throughput", "lag", "batch latency", "end-to-end", "dead letters", "memory"]) ok(titles.includes(w), `dashboard has a '${w}' panel`);
      const ids = dash.panels.map((p) => p.id);
      eq(ids.length, new Set(ids).size, "dashboard panel ids unique");
      for (const p of dash.panels) for (const t of p.targets) checkExpr(`dashboard '${p.title}' ${t.refId}`, t.expr.replace(/\$__rate_interval/g, "5m"));
    }
    // Alerts.
    const objs = renderOk("rules", { values: { monitoring: { prometheusRule: { enabled: true } } } });
    const rule = objs && byKind(objs, "PrometheusRule")[0];
    if (ok(rule, "PrometheusRule rendered")) {
      for (const r of rule.spec.groups[0].rules) {
        checkExpr(`alert ${r.alert}`, r.expr);
        ok(r.labels && r.labels.severity && r.annotations && r.annotations.summary, `alert ${r.alert}: severity and summary`);
      }
      const promtool = which("promtool");
      if (promtool) {
        const dir = tmpdir();
        const f = path.join(dir, "rules.yaml");
        fs.writeFileSync(f, YAML.stringify({ groups: rule.spec.groups }));
        const r = spawnSync(promtool, ["check", "rules", f], { encoding: "utf8" });
        ok(r.status === 0, `promtool check rules: ${r.stdout}${r.stderr}`);
        // And each dashboard query parses as PromQL (as a recording rule).
        const rec = { groups: [{ name: "dashboard", rules: dash.panels.flatMap((p) => p.targets.map((t, i) => ({ record: `dashboard:p${p.id}:${i}`, expr: t.expr.replace(/\$__rate_interval/g, "5m").replace(/\$namespace|\$pod/g, ".*") }))) }] };
        const f2 = path.join(dir, "dash.yaml");
        fs.writeFileSync(f2, YAML.stringify(rec));
        const r2 = spawnSync(promtool, ["check", "rules", f2], { encoding: "utf8" });
        ok(r2.status === 0, `promtool: dashboard queries parse: ${r2.stdout}${r2.stderr}`);
      } else console.log("note: promtool not found (Debian package prometheus): PromQL syntax not checked");
    }
  },

  // Every EMBEDQ_* name the chart can render is a variable `embedq worker`
  // reads (its --help lists them), plus EMBEDQ_LOG_LEVEL (engine/common.c).
  "env-names"() {
    const bin = embedqBin();
    const listed = (r) => new Set([...(r.stdout + r.stderr).matchAll(/\[(EMBEDQ_[A-Z0-9_]+)\]/g)].map((m) => m[1]));
    const help = spawnSync(bin, ["worker", "--help"], { encoding: "utf8" });
    ok(help.status === 0, `embedq worker --help exits 0 (${help.status})`);
    const accepted = listed(help);
    accepted.add("EMBEDQ_LOG_LEVEL");
    ok(accepted.size > 20, `--help lists the variables (${accepted.size})`);
    // The API's variables: from --help once the binary has them; until then
    // (a build without the API code) from tests/api_contract.json, said so.
    const workerApi = Object.values(CONTRACT.worker.flags);
    const missing = workerApi.filter((n) => !accepted.has(n));
    if (missing.length) {
      console.log(`note: embedq worker --help does not list ${missing.join(", ")} (a build without the API): taken from tests/api_contract.json`);
      for (const n of missing) accepted.add(n);
    }
    const serveHelp = spawnSync(bin, ["serve", "--help"], { encoding: "utf8" });
    let serveAccepted;
    if (serveHelp.status === 0) {
      serveAccepted = listed(serveHelp);
      serveAccepted.add("EMBEDQ_LOG_LEVEL");
      for (const n of Object.values(CONTRACT.serve.flags)) ok(serveAccepted.has(n), `embedq serve --help lists ${n} (tests/api_contract.json)`);
    } else {
      console.log(`note: embedq serve --help exits ${serveHelp.status} (a build without the API): serve variables checked against tests/api_contract.json only`);
      serveAccepted = SERVE_ENV;
    }
    const seen = new Set();
    for (const [name, extra] of Object.entries(VARIANTS)) {
      const objs = renderOk(name, { values: extra });
      if (!objs) continue;
      const v = caseValues(extra);
      const c = byKind(objs, "Deployment")[0].spec.template.spec.containers[0];
      const userNames = new Set((v.extraEnv || []).map((e) => e.name));
      for (const e of c.env) {
        if (userNames.has(e.name)) continue; // the user's own extraEnv
        if (!e.name.startsWith("EMBEDQ_")) continue;
        if (v.mode === "serve") ok(serveAccepted.has(e.name), `${name}: ${e.name} is a variable embedq serve reads`);
        else {
          seen.add(e.name);
          ok(accepted.has(e.name), `${name}: ${e.name} is a variable embedq worker reads`);
        }
      }
    }
    // The chart covers every worker variable except the listen address
    // (fixed 0.0.0.0) and the few left to extraEnv.
    const notRendered = [...accepted].filter((n) => !seen.has(n)).sort();
    eq(notRendered, ["EMBEDQ_METRICS_ADDR", ...CONTRACT.worker.notRendered.filter((n) => accepted.has(n))].sort(), "worker variables the chart does not set");
  },

  // The rendered environment, as Kubernetes would expand it, is accepted by
  // the real worker: it starts, and with a broker at hand becomes ready.
  async "worker-env"() {
    const bin = embedqBin();
    const dir = tmpdir();
    const model = path.join(dir, "model");
    const g = spawnSync(bin, ["gen-model", "--preset", "tiny", "--out", model, "--seed", "1"], { encoding: "utf8" });
    if (g.status !== 0) {
      console.log(`SKIP: embedq gen-model failed: ${g.stderr}`);
      process.exit(77);
    }
    const secrets = {
      // Passwords with every character that URL or list syntax would trip on.
      "kafka-user/username": "embedq", "kafka-user/password": "pa=ss;w@rd/%41\\;",
      "redis-auth/password": "r3d:is@pa;ss/%41", "redis-auth/username": "default",
    };
    const base = { worker: { device: "cpu", threads: 1, tokenizeThreads: 1, drainTimeout: 5 }, gpu: { count: 0 } };
    const metricNames = new Set();
    const runs = [];
    // Kafka: the mock broker, ready expected.
    const mock = await startMockKafka(bin);
    if (mock) {
      runs.push(["kafka-plain", merge(base, { kafka: { brokers: mock.addr, inTopic: "in", outTopic: "out", dlqTopic: "dlq", config: { "session.timeout.ms": 6000, "linger.ms": 5 } } }), true]);
      runs.push(["kafka-sasl", merge(base, { kafka: { brokers: mock.addr, sasl: { enabled: true, mechanism: "SCRAM-SHA-256", secretName: "kafka-user" } } }), false]);
      const ca = makeCa(dir);
      if (ca)
        runs.push(["kafka-sasl-tls", merge(base, { kafka: { brokers: mock.addr, sasl: { enabled: true, secretName: "kafka-user" }, tls: { enabled: true, secretName: "kafka-ca", certKey: "tls.crt", keyKey: "tls.key" } } }), false, ca]);
      else console.log("note: openssl not found: TLS settings not started");
    } else console.log("note: embedq mock-kafka unavailable: Kafka runs skipped");
    const redis = await startRedis(dir, secrets["redis-auth/password"]);
    if (redis) {
      runs.push(["redis-password", merge(base, { source: "redis", redis: { address: `127.0.0.1:${redis.port}`, auth: { secretName: "redis-auth" } } }), true]);
      runs.push(["redis-acl", merge(base, { source: "redis", redis: { address: `127.0.0.1:${redis.port}`, db: 1, auth: { secretName: "redis-auth", usernameKey: "username" } } }), true]);
    } else console.log("note: redis-server not found: Redis runs skipped");
    // The API (worker --api-port, embedq serve) where the binary has it.
    const whelp = spawnSync(bin, ["worker", "--help"], { encoding: "utf8" });
    const workerApi = /\[EMBEDQ_API_PORT\]/.test(whelp.stdout + whelp.stderr);
    const serveApi = spawnSync(bin, ["serve", "--help"], { encoding: "utf8" }).status === 0;
    if (workerApi && mock)
      runs.push(["kafka-api", merge(base, merge(PROM, { api: { enabled: true }, kafka: { brokers: mock.addr, inTopic: "in", outTopic: "out", dlqTopic: "dlq" } })), true, null, { api: true }]);
    if (workerApi && redis)
      runs.push(["redis-api", merge(base, merge(PROM, { source: "redis", api: { enabled: true, servedModelName: "q3" }, redis: { address: `127.0.0.1:${redis.port}`, auth: { secretName: "redis-auth" } } })), true, null, { api: true }]);
    if (serveApi) runs.push(["serve", merge(base, merge(SERVE, { autoscaling: { prometheus: { metric: "embedq_api_queue_inputs" } } })), true, null, { api: true }]);
    if (!workerApi || !serveApi)
      console.log(`note: ${bin} has no ${[workerApi ? null : "worker --api-port", serveApi ? null : "serve"].filter(Boolean).join(" and no ")} (a build without the API): those runs skipped`);
    if (!runs.length) {
      console.log("SKIP: neither embedq mock-kafka nor redis-server available");
      process.exit(77);
    }
    try {
      for (const [name, values, wantReady, tlsDir, opts = {}] of runs) {
        const objs = renderOk(name, { values });
        if (!objs) continue;
        const c = byKind(objs, "Deployment")[0].spec.template.spec.containers[0];
        const env = expandEnv(c.env, (e) => {
          const r = e.valueFrom.secretKeyRef, f = e.valueFrom.fieldRef;
          if (r) return secrets[`${r.name}/${r.key}`] ?? "";
          if (f) return `${name}-pod-0`;
          return "";
        });
        // Local stand-ins for what the pod has: the model, a free port, the TLS mount.
        env.EMBEDQ_MODEL = model;
        // The container's command (serve mode) or the image's entrypoint (embedq worker).
        const args = c.command ? c.command.slice(c.command.indexOf("/usr/local/bin/embedq") + 1) : ["worker"];
        const ports = {};
        if (opts.api) {
          // Free ports for the listeners (the probes' and the Service's
          // named ports are checked to match these variables elsewhere).
          ports.api = await freePort();
          if (values.mode === "serve") {
            env.EMBEDQ_PORT = String(ports.api);
            ports.health = ports.api;
          } else {
            env.EMBEDQ_API_PORT = String(ports.api);
            ports.health = await freePort();
            env.EMBEDQ_METRICS_PORT = String(ports.health);
          }
        } else env.EMBEDQ_METRICS_PORT = "0";
        if (tlsDir && env.EMBEDQ_KAFKA_CONFIG) env.EMBEDQ_KAFKA_CONFIG = env.EMBEDQ_KAFKA_CONFIG.replaceAll("/etc/embedq/kafka-tls", tlsDir);
        for (const k of Object.keys(env)) ok(!env[k].includes("$("), `${name}: ${k} fully expanded`);
        const res = await runWorker(bin, env, wantReady, { args, ...ports });
        if (opts.api) {
          const vv = caseValues(values);
          const want = vv.api.servedModelName || vv.model.name;
          let ids = [];
          try { ids = JSON.parse(res.models.body).data.map((d) => d.id); } catch { /* reported below */ }
          ok(res.models.status === 200 && ids.includes(want),
             `${name}: GET /v1/models on the API port answers ${want}: ${res.models.status} ${res.models.body.slice(0, 200)}`);
          // The trigger's query names metrics the real /metrics has.
          const so = byKind(objs, "ScaledObject")[0];
          const prom = so && so.spec.triggers.find((x) => x.type === "prometheus");
          if (ok(prom, `${name}: prometheus trigger rendered`))
            for (const m of prom.metadata.query.matchAll(/\b(embedq_[a-z_]+)\b/g))
              ok(res.metrics.has(m[1]), `${name}: trigger metric ${m[1]} is in the real /metrics scrape`);
        }
        ok(res.started, `${name}: worker started with the rendered env (${res.why})`);
        if (wantReady) ok(res.ready, `${name}: worker ready (/readyz 200): ${res.why}`);
        ok(res.exit === 0 || res.exit === 3, `${name}: SIGTERM exit ${res.exit} (0 drained, 3 drain timeout)`);
        for (const n of res.metrics) metricNames.add(n);
      }
      // Every metric the chart's dashboard and alerts name is in a real scrape.
      if (metricNames.size) {
        const used = new Set();
        const dash = fs.readFileSync(path.join(chartDir, "dashboards", "embedq.json"), "utf8");
        const rules = render({ values: { monitoring: { prometheusRule: { enabled: true } } } }).stdout;
        for (const m of (dash + rules).matchAll(/\b(embedq_[a-z_]+)\b/g)) used.add(m[1].replace(/_(bucket|sum|count)$/, ""));
        for (const u of used) ok(metricNames.has(u), `metric ${u} (dashboard / alerts) appears in a real /metrics scrape`);
      }
    } finally {
      if (mock) mock.stop();
      if (redis) redis.stop();
    }
  },
};

// ---------------------------------------------------------------- processes

function embedqBin() {
  const bin = process.env.EMBEDQ_BIN || path.join(root, "build", "embedq");
  if (!fs.existsSync(bin)) {
    console.log(`SKIP: no embedq binary (${bin}; set EMBEDQ_BIN)`);
    process.exit(77);
  }
  return bin;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function get(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, timeout: 2000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", () => resolve({ status: 0, body: "" }));
    req.on("timeout", () => req.destroy());
  });
}

async function startMockKafka(bin) {
  const p = spawn(bin, ["mock-kafka", "--partitions", "2", "--topics", "in,out,dlq,embedq-in,embedq-out,embedq-dlq"], { stdio: ["pipe", "pipe", "ignore"] });
  const addr = await new Promise((resolve) => {
    let buf = "";
    const t = setTimeout(() => resolve(null), 10000);
    p.stdout.on("data", (d) => {
      buf += d;
      if (buf.includes("\n")) { clearTimeout(t); resolve(buf.split("\n")[0].trim()); }
    });
    p.on("exit", () => { clearTimeout(t); resolve(null); });
  });
  if (!addr) { p.kill("SIGKILL"); return null; }
  return { addr, stop: () => p.kill("SIGTERM") };
}

async function startRedis(dir, password) {
  const server = which("redis-server");
  if (!server) return null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const p = spawn(server, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", dir, "--requirepass", password], { stdio: "ignore" });
    for (let i = 0; i < 50; i++) {
      await sleep(100);
      if (p.exitCode !== null) break;
      const cli = spawnSync("redis-cli", ["-p", String(port), "--no-auth-warning", "-a", password, "PING"], { encoding: "utf8" });
      if (cli.stdout && cli.stdout.includes("PONG")) {
        // An ACL user "default" is Redis's own default user: AUTH default <password> works.
        return { port, stop: () => p.kill("SIGTERM") };
      }
    }
    p.kill("SIGKILL");
  }
  return null;
}

function makeCa(dir) {
  const openssl = which("openssl");
  if (!openssl) return null;
  const d = path.join(dir, "tls");
  fs.mkdirSync(d);
  const r = spawnSync(openssl, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=embedq-test",
                                "-keyout", path.join(d, "tls.key"), "-out", path.join(d, "tls.crt")], { encoding: "utf8" });
  if (r.status !== 0) return null;
  fs.copyFileSync(path.join(d, "tls.crt"), path.join(d, "ca.crt"));
  return d;
}

// Starts the worker with exactly `env` (plus PATH), waits for it to serve
// HTTP and (if wanted) to turn ready, scrapes /metrics, sends SIGTERM.
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// opts: args (default ["worker"]); health: the /readyz /metrics port when
// known (else read from the log); api: the API port, whose /v1/models is
// fetched once ready.
async function runWorker(bin, env, wantReady, opts = {}) {
  const p = spawn(bin, opts.args || ["worker"], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  p.stdout.on("data", (d) => (log += d));
  p.stderr.on("data", (d) => (log += d));
  const exited = new Promise((r) => p.on("exit", (code) => r(code)));
  let port = opts.health || 0, started = false, ready = false, metrics = new Set(), why = "";
  let models = { status: 0, body: "" };
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && p.exitCode === null) {
    await sleep(250);
    const m = !opts.health && log.match(/http: .* on [0-9.:]+:([0-9]+)/);
    if (m) port = Number(m[1]);
    // Started: the model opened and the broker client was configured without
    // error (a known health port: it answers).
    if (opts.health && (await get(port, "/readyz")).status === 0) continue;
    if (port && (opts.health || /backend cpu/.test(log)) && !/^embedq error/m.test(log)) {
      if (!started) { started = true; await sleep(2000); if (p.exitCode !== null) { started = false; break; } }
      const r = await get(port, "/readyz");
      why = `/readyz ${r.status} ${r.body.trim()}`;
      if (r.status === 200) ready = true;
      if (ready || !wantReady) break;
    }
  }
  if (port && p.exitCode === null) {
    if (opts.api && ready) models = await get(opts.api, "/v1/models");
    const r = await get(port, "/metrics");
    for (const m of r.body.matchAll(/^# TYPE (embedq_[a-z_]+) /gm)) metrics.add(m[1]);
  }
  if (p.exitCode === null) p.kill("SIGTERM");
  const timer = setTimeout(() => p.kill("SIGKILL"), 20000);
  const exit = await exited;
  clearTimeout(timer);
  if (!started || (wantReady && !ready)) why += ` | log: ${log.split("\n").slice(-6).join(" / ")}`;
  return { started, ready, exit, metrics, why, models };
}

// ---------------------------------------------------------------- main

if (!cases[CASE]) {
  console.log(`usage: chart_test.mjs ${Object.keys(cases).join("|")}`);
  process.exit(2);
}
await cases[CASE]();
finish(`chart ${CASE}`);
