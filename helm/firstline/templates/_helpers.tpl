{{/* Names and labels. */}}
{{- define "firstline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "firstline" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-firstline" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "firstline.selectorLabels" -}}
app.kubernetes.io/name: firstline
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "firstline.labels" -}}
{{ include "firstline.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "firstline.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "firstline.secretName" -}}
{{ .Values.existingSecret | default (include "firstline.fullname" .) }}
{{- end -}}

{{- define "firstline.configMapName" -}}
{{ .Values.existingConfigMap | default (printf "%s-scope" (include "firstline.fullname" .)) }}
{{- end -}}

{{/* The settings that are secrets (router/settings.py: SecretStr, and the database URL,
which holds a password). They reach pods only through secretKeyRef. */}}
{{- define "firstline.secretKeys" -}}
FIRSTLINE_DATABASE_URL FIRSTLINE_API_TOKEN FIRSTLINE_READ_TOKEN FIRSTLINE_JIRA_WEBHOOK_SECRET FIRSTLINE_LINEAR_WEBHOOK_SECRET FIRSTLINE_GITHUB_WEBHOOK_SECRET FIRSTLINE_PAGERDUTY_WEBHOOK_SECRET FIRSTLINE_JIRA_API_TOKEN FIRSTLINE_LINEAR_API_KEY FIRSTLINE_GITHUB_TOKEN FIRSTLINE_PAGERDUTY_API_TOKEN FIRSTLINE_PAGERDUTY_ROUTING_KEY
{{- end -}}

{{/* Refuse, at render time, values that would deploy something broken or unsafe. */}}
{{- define "firstline.validate" -}}
{{- $secretKeys := splitList " " (include "firstline.secretKeys" .) -}}
{{- if .Values.sqlite.enabled -}}
{{- if ne (int .Values.replicaCount) 1 -}}
{{- fail (printf "sqlite.enabled=true runs exactly one replica (SQLite serves one process), but replicaCount is %v: set replicaCount=1, or use PostgreSQL (sqlite.enabled=false) for more" .Values.replicaCount) -}}
{{- end -}}
{{- if .Values.worker.enabled -}}
{{- fail "sqlite.enabled=true runs one process: worker.enabled needs PostgreSQL (sqlite.enabled=false)" -}}
{{- end -}}
{{- if .Values.autoscaling.enabled -}}
{{- fail "sqlite.enabled=true runs one replica: autoscaling.enabled needs PostgreSQL (sqlite.enabled=false)" -}}
{{- end -}}
{{- if .Values.secrets.FIRSTLINE_DATABASE_URL -}}
{{- fail "sqlite.enabled=true keeps the database on the volume: leave secrets.FIRSTLINE_DATABASE_URL empty" -}}
{{- end -}}
{{- else -}}
{{- if not (or .Values.existingSecret .Values.secrets.FIRSTLINE_DATABASE_URL) -}}
{{- fail "firstline needs a database: set secrets.FIRSTLINE_DATABASE_URL (postgresql+psycopg://user:password@host:5432/db), or existingSecret naming a Secret with that key, or sqlite.enabled=true with replicaCount=1" -}}
{{- end -}}
{{- if hasPrefix "sqlite" (.Values.secrets.FIRSTLINE_DATABASE_URL | default "") -}}
{{- fail "secrets.FIRSTLINE_DATABASE_URL is SQLite, which serves one process: use sqlite.enabled=true (with its volume) instead" -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail (printf "replicaCount must be 1 or more, not %v" .Values.replicaCount) -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := .Values.secrets -}}
{{- if not (has $key $secretKeys) -}}
{{- fail (printf "secrets.%s is not a secret setting firstline reads; the secret settings are: %s" $key (join ", " $secretKeys)) -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := .Values.env -}}
{{- if has $key $secretKeys -}}
{{- fail (printf "env.%s is a secret: put it in secrets (or existingSecret), which reach the pods as secretKeyRef, never as plain values" $key) -}}
{{- end -}}
{{- if eq $key "FIRSTLINE_RULES" -}}
{{- fail "env.FIRSTLINE_RULES is set by the chart (the scope note's mount): give the note as scopeNote or existingConfigMap" -}}
{{- end -}}
{{- end -}}
{{- if not (or .Values.scopeNote .Values.existingConfigMap) -}}
{{- fail "firstline needs a scope note: set scopeNote, or existingConfigMap naming a ConfigMap with the key scope.yaml" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
{{- fail "ingress.enabled=true needs ingress.hosts: the public host names the trackers post to" -}}
{{- end -}}
{{- end -}}

{{/* The environment of every firstline container: the scope note, the database, the
secrets as secretKeyRef, then the plain settings. */}}
{{- define "firstline.env" -}}
- name: FIRSTLINE_RULES
  value: /etc/firstline/scope.yaml
{{- if .Values.sqlite.enabled }}
- name: FIRSTLINE_DATABASE_URL
  value: sqlite:////data/firstline.db
{{- end }}
{{- $root := . }}
{{- range $key := splitList " " (include "firstline.secretKeys" .) }}
{{- $database := eq $key "FIRSTLINE_DATABASE_URL" }}
{{- if not (and $database $root.Values.sqlite.enabled) }}
{{- if or $root.Values.existingSecret (index $root.Values.secrets $key) }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "firstline.secretName" $root }}
      key: {{ $key }}
      optional: {{ not $database }}
{{- end }}
{{- end }}
{{- end }}
{{- range $key, $value := .Values.env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Volumes every firstline pod mounts: the scope note, and /tmp on the read-only root. */}}
{{- define "firstline.volumes" -}}
- name: scope
  configMap:
    name: {{ include "firstline.configMapName" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.sqlite.enabled }}
- name: data
  persistentVolumeClaim:
    claimName: {{ .Values.sqlite.persistence.existingClaim | default (printf "%s-data" (include "firstline.fullname" .)) }}
{{- end }}
{{- end -}}

{{- define "firstline.volumeMounts" -}}
- name: scope
  mountPath: /etc/firstline
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.sqlite.enabled }}
- name: data
  mountPath: /data
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by the serve, worker and migration pods. */}}
{{- define "firstline.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Checksums of what the pods read at start, so a change rolls them. */}}
{{- define "firstline.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}
