{{/* fullname names the namespaced objects: the release name, as a DNS label. */}}
{{- define "vmatrix.fullname" -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* clusterName names the cluster-scoped objects, which need the namespace to be unique. */}}
{{- define "vmatrix.clusterName" -}}
{{- printf "vmatrix-%s-%s" .Release.Namespace (include "vmatrix.fullname" .) | trunc 253 -}}
{{- end -}}

{{/* kubeconfigSecret is the Secret the control plane writes its kubeconfig to. */}}
{{- define "vmatrix.kubeconfigSecret" -}}
{{- printf "vc-%s" (include "vmatrix.fullname" .) -}}
{{- end -}}

{{- define "vmatrix.selectorLabels" -}}
app.kubernetes.io/name: vmatrix
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vmatrix.labels" -}}
{{ include "vmatrix.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Values.kubernetesVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* image is image.repository:image.tag, or image itself when it is set to a whole reference. */}}
{{- define "vmatrix.image" -}}
{{- if kindIs "string" .Values.image -}}
{{- .Values.image -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "v%s" .Values.kubernetesVersion) .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "vmatrix.imagePullPolicy" -}}
{{- if kindIs "string" .Values.image -}}IfNotPresent{{- else -}}{{ .Values.image.pullPolicy }}{{- end -}}
{{- end -}}

{{/* The optional kinds the syncer syncs, as a YAML flow list. */}}
{{- define "vmatrix.optionalKinds" -}}
{{- $kinds := list -}}
{{- if .Values.sync.ingresses }}{{ $kinds = append $kinds "ingresses" }}{{ end -}}
{{- if .Values.sync.networkPolicies }}{{ $kinds = append $kinds "networkpolicies" }}{{ end -}}
[{{ join ", " $kinds }}]
{{- end }}
