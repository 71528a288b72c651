{{/*
Names, labels and the shared pieces of the pod specs.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "linkgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects (63 characters at most, a DNS label). */}}
{{- define "linkgate.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "linkgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "linkgate.labels" -}}
helm.sh/chart: {{ include "linkgate.chart" . }}
{{ include "linkgate.selectorLabels" . }}
app.kubernetes.io/version: {{ include "linkgate.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: linkgate
{{- end }}

{{/* Labels that identify the release. Each workload adds app.kubernetes.io/component. */}}
{{- define "linkgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "linkgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selects the server pods only (not the migration Job's or the test's). */}}
{{- define "linkgate.serverSelectorLabels" -}}
{{ include "linkgate.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "linkgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "linkgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret every credential comes from. */}}
{{- define "linkgate.secretName" -}}
{{- default (include "linkgate.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The migration Job; its name stays the same across upgrades (before-hook-creation replaces it). */}}
{{- define "linkgate.migrationJobName" -}}
{{- include "linkgate.fullname" . | trunc 55 | trimSuffix "-" }}-migrate
{{- end }}

{{- define "linkgate.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "linkgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "linkgate.tag" .) }}
{{- end }}
{{- end }}

{{/* The ports linkgate listens on inside the container (LINKGATE_GRPC_ADDR, LINKGATE_HTTP_ADDR). */}}
{{- define "linkgate.grpcContainerPort" -}}50051{{- end }}
{{- define "linkgate.httpContainerPort" -}}8080{{- end }}

{{/* The providers that take credentials, in the order their variables are listed. */}}
{{- define "linkgate.credentialedProviders" -}}vumi moneykit deck{{- end }}

{{/* Pod-level security: matches USER 10001:10001 in the Dockerfile. */}}
{{- define "linkgate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security for every linkgate container. */}}
{{- define "linkgate.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* One environment variable read from the release's Secret: (list ctx NAME KEY). */}}
{{- define "linkgate.secretEnvVar" -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "linkgate.secretName" (index . 0) }}
      key: {{ index . 2 | quote }}
{{- end }}

{{/* The database URL, the only setting `linkgate migrate` needs. */}}
{{- define "linkgate.databaseEnv" -}}
{{ include "linkgate.secretEnvVar" (list . "LINKGATE_DATABASE_URL" .Values.secretKeys.databaseUrl) }}
{{- end }}

{{/*
Every credential of `linkgate serve`, each through secretKeyRef: the database URL, the
encryption keys, and the client id and secret of each enabled provider. Non-secret settings come
from the ConfigMap (envFrom).
*/}}
{{- define "linkgate.secretEnv" -}}
{{ include "linkgate.databaseEnv" . }}
{{ include "linkgate.secretEnvVar" (list . "LINKGATE_ENCRYPTION_KEY" .Values.secretKeys.encryptionKey) }}
{{- range $provider := splitList " " (include "linkgate.credentialedProviders" .) }}
{{- $settings := index $.Values.providers $provider }}
{{- if $settings.enabled }}
{{- $prefix := printf "LINKGATE_%s" (upper $provider) }}
{{ include "linkgate.secretEnvVar" (list $ (printf "%s_CLIENT_ID" $prefix) $settings.secretKeys.clientId) }}
{{ include "linkgate.secretEnvVar" (list $ (printf "%s_CLIENT_SECRET" $prefix) $settings.secretKeys.clientSecret) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the server reads its TLS files. */}}
{{- define "linkgate.tlsDir" -}}/etc/linkgate/tls{{- end }}
{{- define "linkgate.clientCaDir" -}}/etc/linkgate/client-ca{{- end }}

{{/* TLS settings that cannot work, refused at render time. */}}
{{- define "linkgate.checkTls" -}}
{{- if and .Values.tls.clientCa.enabled (not .Values.tls.enabled) }}
{{- fail "tls.clientCa.enabled needs tls.enabled: mutual TLS is TLS with client certificates" }}
{{- end }}
{{- end }}
