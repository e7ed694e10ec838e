{{/* Names. */}}
{{- define "embedq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "embedq.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "embedq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "embedq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "embedq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "embedq.labels" -}}
helm.sh/chart: {{ include "embedq.chart" . }}
{{ include "embedq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- if eq .Values.mode "worker" }}
embedq/source: {{ .Values.source }}
{{- end }}
{{- end -}}

{{/* Is the HTTP API on? serve mode always; worker mode with api.enabled. */}}
{{- define "embedq.apiOn" -}}
{{- if or (eq .Values.mode "serve") .Values.api.enabled -}}true{{- end -}}
{{- end -}}

{{/* The container port name of /healthz /readyz /metrics: the API's in serve mode. */}}
{{- define "embedq.healthPortName" -}}
{{- if eq .Values.mode "serve" -}}http-api{{- else -}}metrics{{- end -}}
{{- end -}}

{{/* The API's name and limits, the same in both modes (container env entries). */}}
{{- define "embedq.apiLimitsEnv" -}}
{{- $a := .Values.api -}}
- name: EMBEDQ_SERVED_MODEL_NAME
  value: {{ default .Values.model.name $a.servedModelName | quote }}
- name: EMBEDQ_MAX_INPUTS
  value: {{ include "embedq.int" $a.maxInputs | quote }}
- name: EMBEDQ_MAX_PENDING_INPUTS
  value: {{ include "embedq.int" $a.maxPendingInputs | quote }}
- name: EMBEDQ_MAX_BODY_BYTES
  value: {{ include "embedq.int" $a.maxBodyBytes | quote }}
- name: EMBEDQ_MAX_BODIES_BYTES
  value: {{ include "embedq.int" $a.maxBodiesBytes | quote }}
- name: EMBEDQ_MAX_CONNECTIONS
  value: {{ include "embedq.int" $a.maxConnections | quote }}
{{- end -}}

{{/* The preStop sleep in front of SIGTERM (API on only: nothing routes to a queue worker). */}}
{{- define "embedq.preStopSleep" -}}
{{- if include "embedq.apiOn" . -}}{{- .Values.api.preStopSleepSeconds | int64 -}}{{- else -}}0{{- end -}}
{{- end -}}

{{- define "embedq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "embedq.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "embedq.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* A number from values (YAML numbers arrive as float64) as an integer string. */}}
{{- define "embedq.int" -}}
{{- . | int64 | toString -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: the preStop sleep (API on) + worker.drainTimeout
+ margin unless set; a value that does not exceed the sleep plus the drain
timeout would kill embedq mid-drain (the grace period counts from the start
of the preStop hook).
*/}}
{{- define "embedq.terminationGracePeriod" -}}
{{- $drain := .Values.worker.drainTimeout | int64 -}}
{{- $sleep := include "embedq.preStopSleep" . | int64 -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $sleep $drain (.Values.terminationGraceMarginSeconds | int64) -}}
{{- else -}}
{{- $t := .Values.terminationGracePeriodSeconds | int64 -}}
{{- if le $t (add $sleep $drain) -}}
{{- if gt $sleep 0 -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than api.preStopSleepSeconds (%d) + worker.drainTimeout (%d): Kubernetes would kill embedq (SIGKILL) before it finished draining; leave it empty to get the sum + terminationGraceMarginSeconds" $t $sleep $drain) -}}
{{- else -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than worker.drainTimeout (%d): Kubernetes would kill the worker (SIGKILL) before it finished draining; leave it empty to get drainTimeout + terminationGraceMarginSeconds" $t $drain) -}}
{{- end -}}
{{- end -}}
{{- $t -}}
{{- end -}}
{{- end -}}

{{/* KEDA lag per replica: explicit, or ceil(messagesPerSecondPerPod * targetLagSeconds). */}}
{{- define "embedq.lagThreshold" -}}
{{- $a := .Values.autoscaling -}}
{{- if kindIs "invalid" $a.lagThreshold -}}
{{- $v := ceil (mulf $a.messagesPerSecondPerPod $a.targetLagSeconds) | int64 -}}
{{- if lt $v 1 -}}
{{- fail (printf "autoscaling.messagesPerSecondPerPod (%v) * autoscaling.targetLagSeconds (%v) gives a lagThreshold below 1; raise them or set autoscaling.lagThreshold" $a.messagesPerSecondPerPod $a.targetLagSeconds) -}}
{{- end -}}
{{- $v -}}
{{- else -}}
{{- $a.lagThreshold | int64 -}}
{{- end -}}
{{- end -}}

{{/* maxReplicaCount: explicit, else the partition count (kafka) or 4 (redis). */}}
{{- define "embedq.maxReplicas" -}}
{{- $a := .Values.autoscaling -}}
{{- $max := 4 -}}
{{- if not (kindIs "invalid" $a.maxReplicas) -}}
{{- $max = $a.maxReplicas | int64 -}}
{{- else if and (eq .Values.mode "worker") (eq .Values.source "kafka") -}}
{{- $max = .Values.kafka.partitions | int64 -}}
{{- end -}}
{{- if and (eq .Values.mode "worker") (eq .Values.source "kafka") (not .Values.api.enabled) (gt ($max | int64) (.Values.kafka.partitions | int64)) (not .Values.kafka.keda.allowIdleConsumers) -}}
{{- fail (printf "autoscaling.maxReplicas (%d) exceeds kafka.partitions (%d): the extra consumers would sit idle (KEDA caps replicas at the partition count); lower it, raise kafka.partitions, or set kafka.keda.allowIdleConsumers" ($max | int64) (.Values.kafka.partitions | int64)) -}}
{{- end -}}
{{- if lt ($max | int64) (.Values.autoscaling.minReplicas | int64) -}}
{{- fail (printf "autoscaling.maxReplicas (%d) is below autoscaling.minReplicas (%d)" ($max | int64) (.Values.autoscaling.minReplicas | int64)) -}}
{{- end -}}
{{- if lt ($max | int64) 1 -}}
{{- fail "autoscaling.maxReplicas must be at least 1" -}}
{{- end -}}
{{- $max -}}
{{- end -}}

{{/* The offset reset policy KEDA assumes for a group without commits: the worker's. */}}
{{- define "embedq.offsetResetPolicy" -}}
{{- if .Values.kafka.keda.offsetResetPolicy -}}
{{- .Values.kafka.keda.offsetResetPolicy -}}
{{- else -}}
{{- $r := "earliest" -}}
{{- range $k, $v := .Values.kafka.config -}}
{{- if or (eq $k "auto.offset.reset") (eq $k "consumer.auto.offset.reset") -}}
{{- $r = $v | toString -}}
{{- end -}}
{{- end -}}
{{- if has $r (list "smallest" "beginning") -}}{{- $r = "earliest" -}}{{- end -}}
{{- if has $r (list "largest" "end") -}}{{- $r = "latest" -}}{{- end -}}
{{- if not (has $r (list "earliest" "latest")) -}}
{{- fail (printf "kafka.config auto.offset.reset=%s: KEDA's offsetResetPolicy knows only earliest or latest; set kafka.keda.offsetResetPolicy" $r) -}}
{{- end -}}
{{- $r -}}
{{- end -}}
{{- end -}}

{{/* librdkafka security.protocol from the SASL / TLS switches. */}}
{{- define "embedq.kafkaSecurityProtocol" -}}
{{- $k := .Values.kafka -}}
{{- if and $k.sasl.enabled $k.tls.enabled -}}SASL_SSL
{{- else if $k.sasl.enabled -}}SASL_PLAINTEXT
{{- else if $k.tls.enabled -}}SSL
{{- end -}}
{{- end -}}

{{- define "embedq.kafkaTlsDir" -}}/etc/embedq/kafka-tls{{- end -}}

{{/*
EMBEDQ_KAFKA_CONFIG: the chart's security settings first, then kafka.config
(sorted; a later item wins in librdkafka), then the Secret's items (through a
$(VAR) reference to a variable defined before it). The SASL user and
password are not in it: they come in EMBEDQ_KAFKA_SASL_USERNAME /
EMBEDQ_KAFKA_SASL_PASSWORD, taken verbatim (a ';' in a password is safe).
*/}}
{{- define "embedq.kafkaConfig" -}}
{{- $k := .Values.kafka -}}
{{- $items := list -}}
{{- $proto := include "embedq.kafkaSecurityProtocol" . -}}
{{- if $proto -}}
{{- $items = append $items (printf "security.protocol=%s" $proto) -}}
{{- end -}}
{{- if $k.sasl.enabled -}}
{{- $items = append $items (printf "sasl.mechanism=%s" $k.sasl.mechanism) -}}
{{- end -}}
{{- if $k.tls.enabled -}}
{{- $dir := include "embedq.kafkaTlsDir" . -}}
{{- $items = append $items (printf "ssl.ca.location=%s/%s" $dir $k.tls.caKey) -}}
{{- if $k.tls.certKey -}}
{{- $items = append $items (printf "ssl.certificate.location=%s/%s" $dir $k.tls.certKey) -}}
{{- $items = append $items (printf "ssl.key.location=%s/%s" $dir $k.tls.keyKey) -}}
{{- end -}}
{{- end -}}
{{- range $key := keys $k.config | sortAlpha -}}
{{- $v := get $k.config $key -}}
{{- if kindIs "float64" $v -}}{{- $v = $v | int64 -}}{{- end -}}
{{- $items = append $items (printf "%s=%v" $key $v) -}}
{{- end -}}
{{- if $k.configSecret.name -}}
{{- $items = append $items "$(KAFKA_EXTRA_CONFIG)" -}}
{{- end -}}
{{- join ";" $items -}}
{{- end -}}

{{/* KEDA's name for a SASL mechanism. */}}
{{- define "embedq.kedaSasl" -}}
{{- $m := .Values.kafka.sasl.mechanism -}}
{{- if eq $m "PLAIN" -}}plaintext
{{- else if eq $m "SCRAM-SHA-256" -}}scram_sha256
{{- else -}}scram_sha512
{{- end -}}
{{- end -}}

{{/* EMBEDQ_REDIS_URL built from address, db and the auth Secret's variables. */}}
{{/* The Redis URL without credentials: they come in EMBEDQ_REDIS_USERNAME /
EMBEDQ_REDIS_PASSWORD, taken verbatim (no URL-encoding needed). */}}
{{- define "embedq.redisUrl" -}}
{{- $r := .Values.redis -}}
{{- printf "redis://%s/%d" $r.address ($r.db | int64) -}}
{{- end -}}

{{/* Does the release need a TriggerAuthentication? */}}
{{- define "embedq.needsTriggerAuth" -}}
{{- if eq .Values.mode "worker" -}}
{{- if and (eq .Values.source "kafka") (or .Values.kafka.sasl.enabled .Values.kafka.tls.enabled) -}}true
{{- else if and (eq .Values.source "redis") .Values.redis.auth.secretName -}}true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* PromQL matchers for this release's pods: the namespace and the
Deployment's pod names (<fullname>-<ReplicaSet hash>-<suffix>; PromQL
regexes are anchored, so another release's pods do not match). */}}
{{- define "embedq.podSelector" -}}
{{- printf "namespace=%q, pod=~%q" .Release.Namespace (printf "%s-[a-z0-9]+-[a-z0-9]+" (include "embedq.fullname" .)) -}}
{{- end -}}

{{- define "embedq.promSelector" -}}
{{- if .Values.monitoring.prometheusRule.selector -}}
{{- .Values.monitoring.prometheusRule.selector -}}
{{- else -}}
{{- include "embedq.podSelector" . -}}
{{- end -}}
{{- end -}}

{{/* The Prometheus trigger's query: one number for the release (KEDA divides it by the threshold). */}}
{{- define "embedq.apiQuery" -}}
{{- $p := .Values.autoscaling.prometheus -}}
{{- if $p.query -}}
{{- $p.query -}}
{{- else -}}
{{- printf "sum(%s{%s})" $p.metric (default (include "embedq.podSelector" .) $p.selector) -}}
{{- end -}}
{{- end -}}

{{/* Is the Prometheus trigger rendered? */}}
{{- define "embedq.apiTrigger" -}}
{{- if and .Values.autoscaling.enabled .Values.autoscaling.prometheus.enabled (include "embedq.apiOn" .) -}}true{{- end -}}
{{- end -}}

{{/*
Cross-field checks that a JSON Schema cannot word clearly. Each message
names the setting.
*/}}
{{- define "embedq.validate" -}}
{{- $v := .Values -}}
{{- if include "embedq.apiOn" . -}}
{{- if and (eq $v.mode "worker") (eq ($v.api.port | int64) ($v.worker.metricsPort | int64)) -}}
{{- fail (printf "api.port (%d) must differ from worker.metricsPort (%d): the worker serves the API and /metrics on separate ports" ($v.api.port | int64) ($v.worker.metricsPort | int64)) -}}
{{- end -}}
{{- range $a := concat $v.command $v.args -}}
{{- if has (regexReplaceAll "=.*" $a "") (list "--api-port" "--port" "--host") -}}
{{- fail (printf "command/args: %s would override the port the Service and probes use; set api.port instead" $a) -}}
{{- end -}}
{{- end -}}
{{- if $v.autoscaling.enabled -}}
{{- if eq ($v.autoscaling.minReplicas | int64) 0 -}}
{{- fail "autoscaling.minReplicas 0 with the API on: at zero pods nothing exports the API's metrics, so the Prometheus trigger never wakes the workload and requests find no endpoint; use 1 or more" -}}
{{- end -}}
{{- if $v.autoscaling.prometheus.enabled -}}
{{- if not $v.autoscaling.prometheus.serverAddress -}}
{{- fail "autoscaling.prometheus.serverAddress is required when the API is on and autoscaling.enabled (the KEDA prometheus trigger reads the API's load from it), e.g. http://prometheus-operated.monitoring.svc:9090; or set autoscaling.prometheus.enabled=false" -}}
{{- end -}}
{{- else if eq $v.mode "serve" -}}
{{- fail "autoscaling.prometheus.enabled is false in mode serve: the Prometheus trigger is the only one serve mode has; set it, or autoscaling.enabled=false for replicaCount pods" -}}
{{- end -}}
{{- end -}}
{{- else if $v.api.ingress.enabled -}}
{{- fail "api.ingress.enabled needs the API on: api.enabled=true (worker mode) or mode=serve" -}}
{{- end -}}
{{- if eq $v.model.volume "pvc" -}}
{{- if not $v.model.pvc.claimName -}}{{- fail "model.pvc.claimName is required when model.volume is pvc" -}}{{- end -}}
{{- else if eq $v.model.volume "hostPath" -}}
{{- if not $v.model.hostPath.path -}}{{- fail "model.hostPath.path is required when model.volume is hostPath" -}}{{- end -}}
{{- else if eq $v.model.volume "initContainer" -}}
{{- if not $v.model.initContainer.image -}}{{- fail "model.initContainer.image is required when model.volume is initContainer" -}}{{- end -}}
{{- if not (or $v.model.initContainer.command $v.model.initContainer.args) -}}{{- fail "model.initContainer.command (or args) is required when model.volume is initContainer: it must copy the model into the model directory" -}}{{- end -}}
{{- end -}}
{{- if eq $v.source "kafka" -}}
{{- if and $v.kafka.sasl.enabled (not $v.kafka.sasl.secretName) -}}{{- fail "kafka.sasl.secretName is required when kafka.sasl.enabled is true" -}}{{- end -}}
{{- if and $v.kafka.tls.enabled (not $v.kafka.tls.secretName) -}}{{- fail "kafka.tls.secretName is required when kafka.tls.enabled is true" -}}{{- end -}}
{{- if ne (empty $v.kafka.tls.certKey) (empty $v.kafka.tls.keyKey) -}}{{- fail "kafka.tls.certKey and kafka.tls.keyKey must be set together (client certificate and its key)" -}}{{- end -}}
{{- if and $v.kafka.configSecret.name (not $v.kafka.configSecret.key) -}}{{- fail "kafka.configSecret.key is required when kafka.configSecret.name is set" -}}{{- end -}}
{{- range $key, $val := $v.kafka.config -}}
{{- if or (contains ";" (toString $val)) (contains ";" $key) -}}{{- fail (printf "kafka.config.%s: a ';' cannot be passed (EMBEDQ_KAFKA_CONFIG is ';'-separated)" $key) -}}{{- end -}}
{{- if has $key (list "sasl.username" "sasl.password" "ssl.key.password") -}}{{- fail (printf "kafka.config.%s: secrets do not belong in values; use kafka.sasl.secretName or kafka.configSecret" $key) -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.source "redis") $v.redis.auth.secretName (not $v.redis.auth.passwordKey) -}}{{- fail "redis.auth.passwordKey is required when redis.auth.secretName is set" -}}{{- end -}}
{{- if and $v.monitoring.monitor.enabled (eq $v.monitoring.monitor.kind "ServiceMonitor") (not $v.service.enabled) -}}
{{- fail "monitoring.monitor.kind ServiceMonitor needs service.enabled (or use kind PodMonitor)" -}}
{{- end -}}
{{- if and $v.autoscaling.enabled $v.autoscaling.fallback.enabled (not (kindIs "invalid" $v.autoscaling.fallback.replicas)) -}}
{{- if gt ($v.autoscaling.fallback.replicas | int64) (include "embedq.maxReplicas" . | int64) -}}
{{- fail (printf "autoscaling.fallback.replicas (%d) exceeds the maximum replica count (%s)" ($v.autoscaling.fallback.replicas | int64) (include "embedq.maxReplicas" .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
