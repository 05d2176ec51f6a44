{{/* The operator's name: its Deployment, ServiceAccount and (Cluster)Roles. */}}
{{- define "cairn.fullname" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What selects the operator's pod (immutable on a Deployment: never add to it). */}}
{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: cairn
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object the chart makes. */}}
{{- define "cairn.labels" -}}
{{ include "cairn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The operator image: image.tag, else the chart's appVersion. */}}
{{- define "cairn.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The namespaces the step ServiceAccount is made in: each watched one, else the release's. */}}
{{- define "cairn.stepNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- toJson .Values.watchNamespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/*
What the operator does in the namespaces it watches, and nothing more: its resources (kopf patches
them for its progress annotations and finalizers; Reexecutions create child Runs), their status, step
pods (watched for the operator-wide limit) and their logs, the storage Secret of a Job (read only), the
step ServiceAccount (made where it is missing; never changed), and Events about what it did.
A ClusterRole (cluster-wide) or a Role in each watched namespace (namespaced) carries these rules.
*/}}
{{- define "cairn.operatorRules" -}}
- apiGroups: ["cairn.dev"]
  resources: ["jobs", "runs", "reexecutions"]
  verbs: ["get", "list", "watch", "patch", "update", "create"]
- apiGroups: ["cairn.dev"]
  resources: ["runs/status", "reexecutions/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch", "update"]
{{- end -}}

{{/*
What kopf itself needs cluster-wide: it lists and watches CustomResourceDefinitions to find the
resources it serves (in every mode) and, when it watches given namespaces, the namespaces, to notice a
watched one that appears or goes (without that it logs "Not enough permissions" and only learns of
such changes when restarted). Cluster-wide it never reads namespaces.
*/}}
{{- define "cairn.kopfClusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end -}}
