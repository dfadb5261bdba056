{{/* Names, labels, checks and the pod template shared by the Deployment and the StatefulSet. */}}

{{- define "codeq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "codeq.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "codeq.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "codeq.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "codeq.headless" -}}
{{- printf "%s-peers" (include "codeq.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "codeq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "codeq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "codeq.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "codeq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Refuse values the server would refuse at start, so a bad release fails at install time. */}}
{{- define "codeq.checks" -}}
{{- if not (has .Values.mode (list "single" "raft")) -}}
{{- fail (printf "mode must be single or raft, got %q" .Values.mode) -}}
{{- end -}}
{{- if not (and .Values.auth.producer.provider .Values.auth.worker.provider) -}}
{{- fail "set auth.producer.provider and auth.worker.provider (and their config): codeq refuses to start without them" -}}
{{- end -}}
{{- if eq .Values.mode "raft" -}}
{{- if not (or .Values.raft.secret .Values.raft.existingSecret) -}}
{{- fail "raft mode needs raft.secret or raft.existingSecret: the Raft port must not accept unauthenticated peers" -}}
{{- end -}}
{{- $n := int .Values.raft.replicas -}}
{{- if or (lt $n 3) (eq (mod $n 2) 0) -}}
{{- fail (printf "raft.replicas must be odd and at least 3, got %d" $n) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* `id=value,…` over the StatefulSet's pods, value made by the "fmt" with the pod's DNS name. */}}
{{- define "codeq.peerMap" -}}
{{- $root := .root -}}
{{- $pairs := list -}}
{{- range $i := until (int $root.Values.raft.replicas) -}}
{{- $pod := printf "%s-%d" (include "codeq.fullname" $root) $i -}}
{{- $host := printf "%s.%s.%s.svc.%s" $pod (include "codeq.headless" $root) $root.Release.Namespace $root.Values.raft.clusterDomain -}}
{{- $pairs = append $pairs (printf "%s=%s" $pod (printf $.fmt $host)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{- define "codeq.secretName" -}}
{{- include "codeq.fullname" . -}}
{{- end -}}

{{- define "codeq.env" -}}
- name: ENV
  value: {{ .Values.env | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: HOST
  value: "0.0.0.0"
- name: PORT
  value: {{ .Values.service.port | quote }}
- name: PERSISTENCE_PROVIDER
  value: embedded
- name: PERSISTENCE_CONFIG
  value: {{ dict "path" "/var/lib/codeq" "numShards" (int .Values.persistence.numShards) "fsyncOnCommit" .Values.persistence.fsyncOnCommit | toJson | quote }}
- name: PRODUCER_STREAM_ADDR
  value: {{ ternary (printf "0.0.0.0:%d" (int .Values.streams.producerPort)) "" .Values.streams.enabled | quote }}
- name: WORKER_STREAM_ADDR
  value: {{ ternary (printf "0.0.0.0:%d" (int .Values.streams.workerPort)) "" .Values.streams.enabled | quote }}
- name: PRODUCER_AUTH_PROVIDER
  value: {{ .Values.auth.producer.provider | quote }}
- name: WORKER_AUTH_PROVIDER
  value: {{ .Values.auth.worker.provider | quote }}
- name: PRODUCER_AUTH_CONFIG
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret | default (include "codeq.secretName" .) }}
      key: PRODUCER_AUTH_CONFIG
- name: WORKER_AUTH_CONFIG
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret | default (include "codeq.secretName" .) }}
      key: WORKER_AUTH_CONFIG
- name: ALLOW_STATIC_TOKENS
  value: {{ .Values.auth.allowStaticTokens | quote }}
{{- if eq .Values.mode "raft" }}
- name: RAFT_ENABLED
  value: "true"
- name: RAFT_SELF_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: RAFT_BIND_ADDR
  value: {{ printf "0.0.0.0:%d" (int .Values.raft.port) | quote }}
- name: RAFT_PEERS
  value: {{ include "codeq.peerMap" (dict "root" . "fmt" (printf "%%s:%d" (int .Values.raft.port))) | quote }}
- name: RAFT_PEER_HTTP_ADDRS
  value: {{ include "codeq.peerMap" (dict "root" . "fmt" (printf "http://%%s:%d" (int .Values.service.port))) | quote }}
{{- if .Values.streams.enabled }}
- name: RAFT_PEER_PRODUCER_STREAM_ADDRS
  value: {{ include "codeq.peerMap" (dict "root" . "fmt" (printf "grpc://%%s:%d" (int .Values.streams.producerPort))) | quote }}
- name: RAFT_PEER_WORKER_STREAM_ADDRS
  value: {{ include "codeq.peerMap" (dict "root" . "fmt" (printf "grpc://%%s:%d" (int .Values.streams.workerPort))) | quote }}
{{- end }}
- name: RAFT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.raft.existingSecret | default (include "codeq.secretName" .) }}
      key: {{ ternary .Values.raft.existingSecretKey "RAFT_SECRET" (not (empty .Values.raft.existingSecret)) }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "codeq.podSpec" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
containers:
  - name: codeq
    image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    env:
      {{- include "codeq.env" . | nindent 6 }}
    ports:
      - name: http
        containerPort: {{ .Values.service.port }}
      {{- if .Values.streams.enabled }}
      - name: grpc-producer
        containerPort: {{ .Values.streams.producerPort }}
      - name: grpc-worker
        containerPort: {{ .Values.streams.workerPort }}
      {{- end }}
      {{- if eq .Values.mode "raft" }}
      {{- range $i := until (int .Values.persistence.numShards) }}
      - name: {{ printf "raft-%d" $i }}
        containerPort: {{ add $.Values.raft.port $i }}
      {{- end }}
      {{- end }}
    livenessProbe:
      {{- toYaml .Values.livenessProbe | nindent 6 }}
    readinessProbe:
      {{- toYaml .Values.readinessProbe | nindent 6 }}
    startupProbe:
      {{- toYaml .Values.startupProbe | nindent 6 }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: data
        mountPath: /var/lib/codeq
      - name: tmp
        mountPath: /tmp
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
