{{/* Chart name, truncated to the 63 characters a label value may hold. */}}
{{- define "ragloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ragloop.fullname" -}}
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

{{- define "ragloop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "ragloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ragloop
{{- end -}}

{{/* Selector of one component (a role or the gateway): call with (dict "root" $ "component" NAME). */}}
{{- define "ragloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ragloop.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ragloop.componentName" -}}
{{- printf "%s-%s" (include "ragloop.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ragloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ragloop.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ragloop.secretName" -}}
{{- default (printf "%s-secrets" (include "ragloop.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The image of a pod: the GPU image when it asks for GPUs. Call with (dict "root" $ "gpu" N). */}}
{{- define "ragloop.image" -}}
{{- $image := ternary .root.Values.gpuImage .root.Values.image (gt (int .gpu) 0) -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{/* "true" when KEDA ScaledObjects are rendered: asked for, or `auto` and the cluster serves keda.sh/v1alpha1. */}}
{{- define "ragloop.kedaEnabled" -}}
{{- $keda := toString .Values.autoscaling.keda -}}
{{- if or (eq $keda "true") (and (eq $keda "auto") (.Capabilities.APIVersions.Has "keda.sh/v1alpha1")) -}}true{{- end -}}
{{- end -}}

{{- define "ragloop.serviceMonitorEnabled" -}}
{{- $sm := toString .Values.monitoring.serviceMonitor -}}
{{- if or (eq $sm "true") (and (eq $sm "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}true{{- end -}}
{{- end -}}

{{/* The most replicas a role can use: the largest partition count among the topics its groups consume
     (a consumer beyond it holds no partition). Call with (dict "root" $ "role" ROLEVALUES "name" NAME). */}}
{{- define "ragloop.partitionCeiling" -}}
{{- $ceiling := 0 -}}
{{- range $group, $topics := .role.groups -}}
{{- range $topic := $topics -}}
{{- $partitions := index $.root.Values.topicPartitions $topic | default 0 | int -}}
{{- if not $partitions -}}
{{- fail (printf "roles.%s.groups.%s names topic %q, which topicPartitions does not list" $.name $group $topic) -}}
{{- end -}}
{{- if gt $partitions $ceiling -}}{{- $ceiling = $partitions -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $ceiling -}}
{{- end -}}

{{/* maxReplicas of a role: its autoscaling.maxReplicas, refused when above the partition ceiling. */}}
{{- define "ragloop.maxReplicas" -}}
{{- $ceiling := include "ragloop.partitionCeiling" . | int -}}
{{- $max := int .role.autoscaling.maxReplicas -}}
{{- if gt $max $ceiling -}}
{{- fail (printf "roles.%s.autoscaling.maxReplicas is %d but its topics have at most %d partition(s): the extra replicas would sit idle; lower it or raise topicPartitions (and the topics)" .name $max $ceiling) -}}
{{- end -}}
{{- if gt (int .role.replicaCount) $ceiling -}}
{{- fail (printf "roles.%s.replicaCount is %d but its topics have at most %d partition(s)" .name (int .role.replicaCount) $ceiling) -}}
{{- end -}}
{{- $max -}}
{{- end -}}

{{/* Environment shared by every pod: the ConfigMap and the Secret. */}}
{{- define "ragloop.envFrom" -}}
- configMapRef:
    name: {{ include "ragloop.fullname" . }}-config
- secretRef:
    name: {{ include "ragloop.secretName" . }}
{{- end -}}

{{- define "ragloop.dataVolume" -}}
- name: data
{{- if .Values.persistence.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.persistence.sizeLimit }}
{{- end }}
{{- end -}}

{{/* Resources of a pod, with N GPUs added to requests and limits. Call with (dict "resources" R "gpu" N "root" $). */}}
{{- define "ragloop.resources" -}}
{{- $res := deepCopy (default dict .resources) -}}
{{- if gt (int .gpu) 0 -}}
{{- $_ := set $res "limits" (merge (dict .root.Values.gpu.resourceName (int .gpu)) (default dict $res.limits)) -}}
{{- $_ := set $res "requests" (merge (dict .root.Values.gpu.resourceName (int .gpu)) (default dict $res.requests)) -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}
