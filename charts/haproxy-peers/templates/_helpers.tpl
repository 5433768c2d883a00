{{/* Names and labels shared by every template. */}}

{{- define "haproxy-peers.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>", or the release name alone when it already holds the chart name. */}}
{{- define "haproxy-peers.fullname" -}}
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

{{- define "haproxy-peers.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "haproxy-peers.labels" -}}
helm.sh/chart: {{ include "haproxy-peers.chart" . }}
{{ include "haproxy-peers.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator's pods. */}}
{{- define "haproxy-peers.selectorLabels" -}}
app.kubernetes.io/name: {{ include "haproxy-peers.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "haproxy-peers.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "haproxy-peers.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "haproxy-peers.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}

{{/* Where the example fleet lives: the watched namespace if there is one, so the operator sees it. */}}
{{- define "haproxy-peers.exampleNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{/* The example fleet's pods; the PeerGroup and the headless Service select them by these. */}}
{{- define "haproxy-peers.exampleSelectorLabels" -}}
app.kubernetes.io/name: {{ .Values.example.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: haproxy
{{- end -}}

{{- define "haproxy-peers.exampleLabels" -}}
helm.sh/chart: {{ include "haproxy-peers.chart" . }}
{{ include "haproxy-peers.exampleSelectorLabels" . }}
app.kubernetes.io/part-of: haproxy-peers-example
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Pod and container hardening shared by the operator and the sidecar. */}}
{{- define "haproxy-peers.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
  - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}
