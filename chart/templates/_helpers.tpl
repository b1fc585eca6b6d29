{{/* Names and labels shared by every template. */}}
{{- define "lifeboat.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lifeboat.injector" -}}
{{- printf "%s-injector" (include "lifeboat.fullname" .) -}}
{{- end -}}

{{- define "lifeboat.tlsSecret" -}}
{{- if and (eq .Values.tls.mode "secret") .Values.tls.secretName -}}
{{- .Values.tls.secretName -}}
{{- else -}}
{{- printf "%s-tls" (include "lifeboat.injector" .) -}}
{{- end -}}
{{- end -}}

{{- define "lifeboat.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "lifeboat.selectorLabels" -}}
app.kubernetes.io/name: lifeboat
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: injector
{{- end -}}

{{- /* The recommended app.kubernetes.io/* labels on every object the chart renders. */ -}}
{{- define "lifeboat.labels" -}}
{{ include "lifeboat.selectorLabels" . }}
{{ include "lifeboat.sharedLabels" . }}
{{- end -}}

{{- /* The same for objects about the sidecars' monitoring (PodMonitor, rules, dashboard). */ -}}
{{- define "lifeboat.monitoringLabels" -}}
app.kubernetes.io/name: lifeboat
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: monitoring
{{ include "lifeboat.sharedLabels" . }}
{{- end -}}

{{- define "lifeboat.sharedLabels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: lifeboat
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The names of .Values.imagePullSecrets as a JSON list: what the injector adds to injected pods. */}}
{{- define "lifeboat.pullSecretNames" -}}
{{- $names := list -}}
{{- range .Values.imagePullSecrets -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- $names | toJson -}}
{{- end -}}
