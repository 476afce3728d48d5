{{- define "firstline.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "firstline.labels" -}}
app.kubernetes.io/name: firstline
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
