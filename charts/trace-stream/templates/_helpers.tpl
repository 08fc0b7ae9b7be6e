{{/*
Chart name, truncated: Kubernetes names and label values stop at 63 characters.
*/}}
{{- define "trace-stream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. When the release name already contains the chart name it
is used alone, so `helm install trace-stream .` gives "trace-stream", not
"trace-stream-trace-stream".
*/}}
{{- define "trace-stream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "trace-stream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every object of the release: the chart's own, then the user's
commonLabels (the chart's win on a clash; the schema keeps commonLabels off the
selector and component keys, which the helpers below add).
*/}}
{{- define "trace-stream.commonLabels" -}}
{{- $labels := dict
  "helm.sh/chart" (include "trace-stream.chart" .)
  "app.kubernetes.io/version" (include "trace-stream.imageTag" . | trunc 63)
  "app.kubernetes.io/managed-by" .Release.Service
  "app.kubernetes.io/part-of" (include "trace-stream.name" .) }}
{{- toYaml (merge $labels .Values.commonLabels) }}
{{- end }}

{{/*
Labels of the service's own objects.
*/}}
{{- define "trace-stream.labels" -}}
{{ include "trace-stream.commonLabels" . }}
{{ include "trace-stream.selectorLabels" . }}
{{- end }}

{{/*
Selector labels: name and instance only, because a selector is immutable once the
StatefulSet exists, so it must not carry anything that changes between releases.
*/}}
{{- define "trace-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trace-stream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one-off pods (the topics hook, the helm test). They leave out
app.kubernetes.io/name on purpose: with it they would match the selectors of the
Service, the PodDisruptionBudget and the ServiceMonitor, and Prometheus would
scrape a pod that is only creating topics.
Call with (dict "ctx" $ "component" "topics").
*/}}
{{- define "trace-stream.oneOffLabels" -}}
{{ include "trace-stream.commonLabels" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of the ServiceAccount the service runs as.
*/}}
{{- define "trace-stream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trace-stream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image tag: an empty image.tag means the chart's appVersion.
*/}}
{{- define "trace-stream.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Image reference: repository@digest when image.digest is set (the tag is then
ignored), else repository:tag.
*/}}
{{- define "trace-stream.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "trace-stream.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Secret holding the secret environment variables: the user's existingSecret, else
the one this chart renders. Empty when there is neither.
*/}}
{{- define "trace-stream.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if include "trace-stream.secretData" . }}
{{- include "trace-stream.fullname" . }}
{{- end }}
{{- end }}

{{/*
The chart-managed Secret's entries, by environment variable name, as YAML. Empty
values are left out so the service sees "unset" rather than an empty secret.
*/}}
{{- define "trace-stream.secretData" -}}
{{- $s := .Values.secrets }}
{{- $env := dict }}
{{- if $s.kafkaSaslPassword }}{{ $_ := set $env "KAFKA_SASL_PASSWORD" $s.kafkaSaslPassword }}{{ end }}
{{- if $s.webhookAuthToken }}{{ $_ := set $env "WEBHOOK_AUTH_TOKEN" $s.webhookAuthToken }}{{ end }}
{{- if $s.webhookSigningSecret }}{{ $_ := set $env "WEBHOOK_SIGNING_SECRET" $s.webhookSigningSecret }}{{ end }}
{{- if $s.myfxbookWebhookToken }}{{ $_ := set $env "MYFXBOOK_WEBHOOK_TOKEN" $s.myfxbookWebhookToken }}{{ end }}
{{- if $s.alertWebhookUrl }}{{ $_ := set $env "ALERT_WEBHOOK_URL" $s.alertWebhookUrl }}{{ end }}
{{- if $s.schemaRegistryBasicAuth }}{{ $_ := set $env "SCHEMA_REGISTRY_BASIC_AUTH" $s.schemaRegistryBasicAuth }}{{ end }}
{{- if $env }}{{ toYaml $env }}{{ end }}
{{- end }}

{{/*
Non-secret environment, by variable name, as YAML of strings. Shared by the
ConfigMap (the service) and the topics hook Job, which cannot read the ConfigMap
because a pre-install hook runs before the release's objects exist.
Optional settings are left out when empty: the service rejects some empty strings
(an empty TRACE_RETRY_SCHEDULE is not a schedule) and applies its own defaults.
*/}}
{{- define "trace-stream.config" -}}
{{- $v := .Values }}
{{- $env := dict }}
{{- $_ := set $env "KAFKA_BOOTSTRAP_SERVERS" (required "kafka.bootstrapServers is required" $v.kafka.bootstrapServers) }}
{{- $_ = set $env "KAFKA_SECURITY_PROTOCOL" $v.kafka.securityProtocol }}
{{- if $v.kafka.sasl.mechanism }}{{ $_ = set $env "KAFKA_SASL_MECHANISM" $v.kafka.sasl.mechanism }}{{ end }}
{{- if $v.kafka.sasl.username }}{{ $_ = set $env "KAFKA_SASL_USERNAME" $v.kafka.sasl.username }}{{ end }}
{{- if $v.kafka.extraConfig }}{{ $_ = set $env "KAFKA_EXTRA_CONFIG" (toJson $v.kafka.extraConfig) }}{{ end }}
{{- $_ = set $env "KAFKA_SESSION_TIMEOUT_MS" (toString $v.kafka.sessionTimeoutMs) }}
{{- if $v.kafka.schemaRegistry.url }}{{ $_ = set $env "SCHEMA_REGISTRY_URL" $v.kafka.schemaRegistry.url }}{{ end }}
{{- $_ = set $env "TRACE_GROUP_ID" $v.trace.groupId }}
{{- $_ = set $env "TRACE_INPUT_TOPIC" $v.trace.inputTopic }}
{{- $_ = set $env "TRACE_SIGNAL_SETTINGS_TOPIC" $v.trace.signalSettingsTopic }}
{{- $_ = set $env "TRACE_INPUT_OFFSET_RESET" $v.trace.inputOffsetReset }}
{{- $_ = set $env "TRACE_DELAY_MINUTES" (toString $v.trace.delayMinutes) }}
{{- $_ = set $env "TRACE_RETRY_MAX_ATTEMPTS" (toString $v.trace.retry.maxAttempts) }}
{{- $_ = set $env "TRACE_RETRY_BACKOFF_BASE" (toString $v.trace.retry.backoffBase) }}
{{- if $v.trace.retry.schedule }}{{ $_ = set $env "TRACE_RETRY_SCHEDULE" $v.trace.retry.schedule }}{{ end }}
{{- $_ = set $env "TRACE_RETRY_JITTER" (toString $v.trace.retry.jitter) }}
{{- if $v.trace.rateLimits }}
{{- $limits := dict }}
{{- range $name, $l := $v.trace.rateLimits }}
{{- $one := dict }}
{{- if $l.perSecond }}{{ $_ = set $one "per_second" $l.perSecond }}{{ end }}
{{- if $l.burst }}{{ $_ = set $one "burst" (int $l.burst) }}{{ end }}
{{- if $l.perDay }}{{ $_ = set $one "per_day" (int64 $l.perDay) }}{{ end }}
{{- $_ = set $limits $name $one }}
{{- end }}
{{- $_ = set $env "TRACE_RATE_LIMITS" (toJson $limits) }}
{{- end }}
{{- $_ = set $env "TRACE_MAX_IN_FLIGHT" (toString $v.trace.maxInFlight) }}
{{- $_ = set $env "TRACE_LOOKAHEAD_MEMORY_MIB" (toString $v.trace.lookaheadMemoryMib) }}
{{- $_ = set $env "TRACE_MAX_BUFFERED" (toString (int64 $v.trace.maxBuffered)) }}
{{- $_ = set $env "TRACE_KAFKA_TIMEOUT_SECONDS" (toString $v.trace.kafkaTimeoutSeconds) }}
{{- $_ = set $env "TRACE_KAFKA_RECOVERY_SECONDS" (toString $v.trace.kafkaRecoverySeconds) }}
{{- $_ = set $env "TRACE_STARTUP_TIMEOUT_SECONDS" (toString $v.trace.startupTimeoutSeconds) }}
{{- $_ = set $env "TRACE_MAX_CLOCK_SKEW" $v.trace.maxClockSkew }}
{{- $_ = set $env "TRACE_EARLIEST_CLOSE" $v.trace.earliestClose }}
{{- $_ = set $env "TRACE_SHUTDOWN_TIMEOUT_SECONDS" (toString $v.trace.shutdownTimeoutSeconds) }}
{{- $_ = set $env "TRACE_BREAKER_THRESHOLD" (toString $v.trace.breaker.threshold) }}
{{- $_ = set $env "TRACE_BREAKER_COOLDOWN_SECONDS" (toString $v.trace.breaker.cooldownSeconds) }}
{{- $_ = set $env "TRACE_TOPIC_PREFIX" $v.topics.prefix }}
{{- $_ = set $env "TRACE_TOPIC_PARTITIONS" (toString $v.topics.partitions) }}
{{- $_ = set $env "TRACE_TOPIC_REPLICATION_FACTOR" (toString $v.topics.replicationFactor) }}
{{- $_ = set $env "TRACE_TOPIC_RETENTION_DAYS" (toString $v.topics.retentionDays) }}
{{- if $v.topics.deadLetterRetentionDays }}{{ $_ = set $env "TRACE_DEAD_LETTER_RETENTION_DAYS" (toString $v.topics.deadLetterRetentionDays) }}{{ end }}
{{- $_ = set $env "TRACE_ENABLED_ADAPTERS" (join "," $v.adapters.enabled) }}
{{- if has "webhook" $v.adapters.enabled }}
{{- $_ = set $env "WEBHOOK_ENDPOINT" (required "adapters.webhook.endpoint is required when the webhook adapter is enabled" $v.adapters.webhook.endpoint) }}
{{- $_ = set $env "WEBHOOK_AUTH_HEADER" $v.adapters.webhook.authHeader }}
{{- $_ = set $env "WEBHOOK_TIMEOUT_SECONDS" (toString $v.adapters.webhook.timeoutSeconds) }}
{{- end }}
{{- if and (has "myfxbook" $v.adapters.enabled) $v.adapters.myfxbook.url }}
{{- $_ = set $env "MYFXBOOK_WEBHOOK_URL" $v.adapters.myfxbook.url }}
{{- end }}
{{- if has "file" $v.adapters.enabled }}
{{- $f := $v.adapters.file }}
{{- $_ = set $env "FILE_EXPORT_TYPE" $f.type }}
{{- if eq $f.type "local" }}
{{- $_ = set $env "FILE_EXPORT_DIR" $f.dir }}
{{- else }}
{{- $_ = set $env "S3_BUCKET" (required "adapters.file.s3.bucket is required when adapters.file.type is s3" $f.s3.bucket) }}
{{- if $f.s3.prefix }}{{ $_ = set $env "S3_PREFIX" $f.s3.prefix }}{{ end }}
{{- if $f.s3.endpointUrl }}{{ $_ = set $env "S3_ENDPOINT_URL" $f.s3.endpointUrl }}{{ end }}
{{- end }}
{{- end }}
{{- $_ = set $env "METRICS_PORT" (toString $v.metrics.port) }}
{{- $_ = set $env "TRACE_BACKLOG_REFRESH_SECONDS" (toString $v.metrics.backlogRefreshSeconds) }}
{{- $_ = set $env "ALERT_MIN_INTERVAL_SECONDS" (toString $v.alerts.minIntervalSeconds) }}
{{- $_ = set $env "LOG_FORMAT" $v.log.format }}
{{- $_ = set $env "LOG_LEVEL" $v.log.level }}
{{- toYaml $env }}
{{- end }}

{{/*
True (non-empty) when the file adapter writes to a local directory, which then
needs a writable volume: the root filesystem is read-only.
*/}}
{{- define "trace-stream.localExport" -}}
{{- if and (has "file" .Values.adapters.enabled) (eq .Values.adapters.file.type "local") }}true{{ end }}
{{- end }}

{{/*
Pod and container security contexts, shared by every pod of the chart.
*/}}
{{- define "trace-stream.podSecurityContext" -}}
{{- with .Values.podSecurityContext -}}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "trace-stream.securityContext" -}}
{{- with .Values.securityContext -}}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
PromQL label matcher of this release's scrape targets.
*/}}
{{- define "trace-stream.promSelector" -}}
job="{{ .Values.prometheusRule.jobLabel | default (include "trace-stream.fullname" .) }}", namespace="{{ .Release.Namespace }}"
{{- end }}

{{/*
Pod-level settings every replica and the topics hook share: priority, placement.
The hook is scheduled like the service (same nodes, same priority) because it
talks to the same Kafka from the same network.
*/}}
{{- define "trace-stream.podScheduling" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
topologySpreadConstraints of the service's pods. An entry without a labelSelector
gets the chart's selector labels, as kube-state-metrics does, so the usual entry
is just maxSkew, topologyKey and whenUnsatisfiable.
*/}}
{{- define "trace-stream.topologySpreadConstraints" -}}
{{- $constraints := list }}
{{- range .Values.topologySpreadConstraints }}
{{- $constraint := deepCopy . }}
{{- if not $constraint.labelSelector }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "trace-stream.selectorLabels" $ | fromYaml)) }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}

{{/*
The PromQL query of the KEDA trigger: autoscaling.keda.prometheus.query (run
through tpl), else the largest due lag any of this release's replicas reports.
Every replica reports the due lag of all partitions, so max is the worst.
*/}}
{{- define "trace-stream.kedaQuery" -}}
{{- with .Values.autoscaling.keda.prometheus.query }}
{{- tpl . $ }}
{{- else }}
{{- printf "max(trust_trace_due_lag_seconds{namespace=\"%s\",pod=~\"%s-[0-9]+\"})" .Release.Namespace (include "trace-stream.fullname" .) }}
{{- end }}
{{- end }}

{{/*
TCP ports the brokers listen on, as a YAML list: networkPolicy.egress.kafka.ports,
else the ports of kafka.bootstrapServers (9092 where an entry names none, as
librdkafka assumes). Brokers advertise their own addresses after the bootstrap,
normally on the bootstrap listener's port; set the ports when they differ.
*/}}
{{- define "trace-stream.kafkaPorts" -}}
{{- $ports := list }}
{{- with .Values.networkPolicy.egress.kafka.ports }}
{{- $ports = . }}
{{- else }}
{{- range splitList "," .Values.kafka.bootstrapServers }}
{{- $server := trim . | splitList "://" | last }}
{{- $port := 9092 }}
{{- if regexMatch ":[0-9]+$" $server }}
{{- $port = regexFind "[0-9]+$" $server | int }}
{{- end }}
{{- $ports = append $ports $port }}
{{- end }}
{{- end }}
{{- toYaml ($ports | uniq) }}
{{- end }}
