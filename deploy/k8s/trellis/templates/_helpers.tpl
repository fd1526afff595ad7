{{/*
Template subset: this chart is rendered by Helm, by test/helm-render (Go text/template + sprig) and by
`trellisctl install k8s` (packages/control/src/install/template.ts). Use only: if/else if/else, range (lists and
maps, with `$k, $v :=`), with, define/include, variables, and the functions include, toYaml, nindent, indent,
quote, default, required, printf, eq, ne, and, or, not, trunc, trimSuffix, toString.
Numbers from values are float64 under Helm: compare them as strings (`eq (toString .port) "80"`).
*/}}

{{- define "trellis.labels" -}}
app.kubernetes.io/part-of: trellis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "trellis.controlName" -}}
{{ printf "%s-control" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trellis.xdsAddress" -}}
{{ printf "%s-control.%s.svc:15012" .Release.Name .Release.Namespace }}
{{- end }}

{{- define "trellis.controlSelector" -}}
app: trellis-control
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trellis.agentSelector" -}}
app: trellis-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
