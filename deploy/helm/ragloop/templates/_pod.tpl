{{/* The pod spec every component shares. Call with (dict "root" $ "component" NAME "args" LIST "gpu" N
     "resources" R "nodeSelector" M "tolerations" L "affinity" M "port" P "restartPolicy" S "probes" BOOL). */}}
{{- define "ragloop.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "ragloop.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- if .restartPolicy }}
restartPolicy: {{ .restartPolicy }}
{{- end }}
containers:
  - name: {{ .component }}
    image: {{ include "ragloop.image" (dict "root" $root "gpu" .gpu) | quote }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    envFrom:
      {{- include "ragloop.envFrom" $root | nindent 6 }}
    {{- with $root.Values.extraEnv }}
    env:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    {{- if .port }}
    ports:
      - name: http
        containerPort: {{ .port }}
        protocol: TCP
    {{- end }}
    {{- if and .probes .port }}
    startupProbe:
      httpGet: {path: /healthz, port: http}
      {{- toYaml $root.Values.probes.startup | nindent 6 }}
    livenessProbe:
      httpGet: {path: /healthz, port: http}
      {{- toYaml $root.Values.probes.liveness | nindent 6 }}
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      {{- toYaml $root.Values.probes.readiness | nindent 6 }}
    {{- end }}
    resources:
      {{- include "ragloop.resources" (dict "resources" .resources "gpu" .gpu "root" $root) | nindent 6 }}
    volumeMounts:
      - name: data
        mountPath: /data
      - name: tmp
        mountPath: /tmp
volumes:
  {{- include "ragloop.dataVolume" $root | nindent 2 }}
  - name: tmp
    emptyDir: {}
{{- $gpuPool := gt (int .gpu) 0 }}
{{- $nodeSelector := merge (deepCopy (default dict .nodeSelector)) (ternary $root.Values.gpu.nodeSelector dict $gpuPool) }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tolerations := concat (default list .tolerations) (ternary $root.Values.gpu.tolerations list $gpuPool) }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
