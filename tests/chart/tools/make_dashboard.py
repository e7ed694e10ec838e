#!/usr/bin/env python3
"""Writes charts/embedq/dashboards/embedq.json (the Grafana dashboard);
--check only compares.

The JSON is generated so that every panel follows one layout and one label
selector; run this after editing it and commit both. tests/chart checks the
committed JSON (every query names an exported metric, the ConfigMap carries
the same bytes).
"""
import json, os, sys

SEL = 'namespace=~"$namespace", pod=~"$pod"'
DS = {"type": "prometheus", "uid": "${datasource}"}

panels = []
def panel(title, targets, unit, kind="timeseries", w=12, h=8, desc="", stack=False):
    n = len(panels)
    x = 0 if kind == "stat" else (n % 2) * 12
    p = {
        "id": n + 1, "type": kind, "title": title, "description": desc, "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [dict(t, refId=chr(65 + i), datasource=DS) for i, t in enumerate(targets)],
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    p["gridPos"] = {"x": x, "y": 0, "w": w, "h": h}
    panels.append(p)

def t(expr, legend):
    return {"expr": expr, "legendFormat": legend, "range": True}

def q(metric, quant):
    return (f'histogram_quantile({quant}, sum by (le) (rate({metric}_bucket{{{SEL}}}[$__rate_interval])))')

panel("Throughput (messages/s)", [
    t(f'sum(rate(embedq_messages_consumed_total{{{SEL}}}[$__rate_interval]))', "consumed"),
    t(f'sum(rate(embedq_messages_produced_total{{{SEL}}}[$__rate_interval]))', "produced"),
    t(f'sum(rate(embedq_dead_letters_total{{{SEL}}}[$__rate_interval]))', "dead letters")],
    "ops", desc="Input records taken, outputs accepted by the broker, dead letters.")
panel("Tokens/s", [
    t(f'sum(rate(embedq_tokens_total{{{SEL}}}[$__rate_interval]))', "fleet"),
    t(f'sum by (pod) (rate(embedq_tokens_total{{{SEL}}}[$__rate_interval]))', "{{pod}}")],
    "short", desc="Tokens embedded per second; per pod, compare with `embedq bench`.")
panel("Consumer lag (records)", [
    t(f'sum(embedq_partition_lag{{{SEL}}})', "total"),
    t(f'sum by (pod) (embedq_partition_lag{{{SEL}}})', "{{pod}}")],
    "short", desc="Records not yet processed as the workers see them (Kafka: per assigned "
    "partition; Redis: the group's lag). KEDA reads the broker's own figure.")
panel("Pods ready / draining", [
    t(f'sum(embedq_ready{{{SEL}}})', "ready"),
    t(f'count(embedq_ready{{{SEL}}})', "running"),
    t(f'sum(embedq_draining{{{SEL}}})', "draining")],
    "short", desc="Workers answering /readyz 200, all scraped workers, and workers draining after SIGTERM.")
panel("Batch latency (engine seconds per batch)", [
    t(q("embedq_batch_seconds", 0.5), "p50"),
    t(q("embedq_batch_seconds", 0.95), "p95"),
    t(q("embedq_batch_seconds", 0.99), "p99")],
    "s", desc="Forward pass, pooling and normalization of one batch.")
panel("Batch size (tokens per batch)", [
    t(q("embedq_batch_tokens", 0.5), "p50"),
    t(q("embedq_batch_tokens", 0.95), "p95"),
    t(f'sum(rate(embedq_batch_tokens_sum{{{SEL}}}[$__rate_interval])) / sum(rate(embedq_batch_tokens_count{{{SEL}}}[$__rate_interval]))', "mean")],
    "short", desc="How full batches are against the token budget (worker.batchTokens).")
panel("End-to-end latency (record timestamp to output accepted)", [
    t(q("embedq_end_to_end_seconds", 0.5), "p50"),
    t(q("embedq_end_to_end_seconds", 0.95), "p95"),
    t(q("embedq_end_to_end_seconds", 0.99), "p99")],
    "s", desc="Includes the time a record waited in the topic or stream.")
panel("Dead letters by reason (per second)", [
    t(f'sum by (reason) (rate(embedq_dead_letters_total{{{SEL}}}[$__rate_interval]))', "{{reason}}")],
    "ops", stack=True, desc="Reason codes: schemas/README.md.")
panel("Engine / GPU memory", [
    t(f'sum by (pod, kind) (embedq_engine_memory_bytes{{{SEL}, kind=~"weights|activations|workspace"}})', "{{pod}} {{kind}}"),
    t(f'max by (pod) (embedq_engine_memory_bytes{{{SEL}, kind="device_used"}})', "{{pod}} GPU used"),
    t(f'max by (pod) (embedq_engine_memory_bytes{{{SEL}, kind="device_total"}})', "{{pod}} GPU total")],
    "bytes", desc="Weights, activations and workspace of the engine; on CUDA also the whole GPU's used and total memory.")
panel("In-flight messages", [
    t(f'sum by (pod) (embedq_in_flight_messages{{{SEL}}})', "{{pod}}")],
    "short", desc="Taken and not yet acknowledged (bounded by worker.maxInFlight).")
panel("Engine and broker errors (per second)", [
    t(f'sum by (pod) (rate(embedq_engine_errors_total{{{SEL}}}[$__rate_interval]))', "{{pod}} engine"),
    t(f'sum by (pod, kind) (rate(embedq_broker_errors_total{{{SEL}}}[$__rate_interval]))', "{{pod}} {{kind}}")],
    "ops", desc="Failed engine calls; broker errors by kind (delivery_failed, consumer_error, exec_failed, exec_retry, reconnect).")
panel("Batches/s", [
    t(f'sum(rate(embedq_batches_total{{{SEL}}}[$__rate_interval]))', "batches")],
    "ops", desc="Engine batches run per second.")

# Rows of two panels, 8 high.
for i, p in enumerate(panels):
    p["gridPos"]["y"] = (i // 2) * 8

dash = {
    "title": "embedq workers",
    "uid": "embedq-workers",
    "description": "embedq worker fleet: throughput, lag, batch and end-to-end latency, dead letters, engine memory.",
    "tags": ["embedq"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "refresh": "30s",
    "time": {"from": "now-3h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1},
        {"name": "namespace", "label": "Namespace", "type": "query", "datasource": DS,
         "query": {"query": "label_values(embedq_ready, namespace)", "refId": "ns"},
         "definition": "label_values(embedq_ready, namespace)", "refresh": 2, "includeAll": False,
         "multi": False, "current": {}, "hide": 0, "sort": 1},
        {"name": "pod", "label": "Pod", "type": "query", "datasource": DS,
         "query": {"query": 'label_values(embedq_ready{namespace=~"$namespace"}, pod)', "refId": "pod"},
         "definition": 'label_values(embedq_ready{namespace=~"$namespace"}, pod)', "refresh": 2,
         "includeAll": True, "allValue": ".*", "multi": True, "current": {}, "hide": 0, "sort": 1},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
out = os.path.join(root, "charts", "embedq", "dashboards", "embedq.json")
text = json.dumps(dash, indent=2) + "\n"
if sys.argv[1:] == ["--check"]:  # tests/chart: the committed JSON is this script's output
    same = os.path.exists(out) and open(out).read() == text
    print(f"{out}: {'up to date' if same else 'differs from tests/chart/tools/make_dashboard.py: run it'}")
    sys.exit(0 if same else 1)
with open(out, "w") as f:
    f.write(text)
print(out)
