{{/* Names, labels and the pieces every component shares. */}}

{{- define "indextts.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "indextts.fullname" -}}
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

{{/* A component's resource name: <fullname>-<component> (fullname trimmed to fit 63 characters). */}}
{{- define "indextts.componentName" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- printf "%s-%s" (include "indextts.fullname" $root | trunc (int (sub 62 (len $component))) | trimSuffix "-") $component -}}
{{- end -}}

{{- define "indextts.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component: (list $ "gateway"). */}}
{{- define "indextts.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "indextts.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* All labels of a component's resources: (list $ "gateway"). */}}
{{- define "indextts.labels" -}}
{{- $root := index . 0 -}}
{{ include "indextts.selectorLabels" . }}
helm.sh/chart: {{ include "indextts.chart" $root }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: indextts
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* image: (list $ .Values.gateway.image "default-tag") */}}
{{- define "indextts.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $defaultTag := index . 2 -}}
{{- printf "%s:%s" $image.repository (default $defaultTag $image.tag) -}}
{{- end -}}

{{- define "indextts.natsUrl" -}}
{{- if .Values.nats.external.url -}}
{{- .Values.nats.external.url -}}
{{- else -}}
{{- printf "nats://%s:%d" (include "indextts.componentName" (list . "nats")) (int .Values.nats.port) -}}
{{- end -}}
{{- end -}}

{{- define "indextts.shareClaimName" -}}
{{- default (include "indextts.componentName" (list . "share")) .Values.share.existingClaim -}}
{{- end -}}

{{- define "indextts.modelsClaimName" -}}
{{- default (include "indextts.componentName" (list . "models")) .Values.models.persistentVolumeClaim.existingClaim -}}
{{- end -}}

{{- define "indextts.apiKeySecretName" -}}
{{- default (include "indextts.componentName" (list . "gateway-api-key")) .Values.gateway.apiKey.existingSecret -}}
{{- end -}}

{{- define "indextts.voicePresetsConfigMap" -}}
{{- default (include "indextts.componentName" (list . "voice-presets")) .Values.voicePresets.existingConfigMap -}}
{{- end -}}

{{- define "indextts.hasVoicePresets" -}}
{{- if or .Values.voicePresets.existingConfigMap .Values.voicePresets.presets -}}true{{- end -}}
{{- end -}}

{{/* Settings every process reads (tts_api/policy.py). */}}
{{- define "indextts.sharedEnv" -}}
- name: TTS_SHARED_DIR
  value: {{ .Values.share.mountPath | quote }}
- name: TTS_SHARED_PREFIX
  value: {{ .Values.share.prefix | quote }}
- name: TTS_OUTPUT_DIR
  value: {{ .Values.share.outputDir | quote }}
- name: TTS_OUTPUT_PER_NAMESPACE
  value: {{ .Values.share.outputPerNamespace | quote }}
- name: TTS_DELETE_OUTPUTS
  value: {{ .Values.share.deleteOutputs | quote }}
- name: TTS_MAX_TEXT_LENGTH
  value: {{ .Values.maxTextLength | quote }}
- name: TTS_MODELS
  value: {{ include "indextts.servedModel" . | quote }}
- name: TTS_DEFAULT_MODEL
  value: {{ include "indextts.servedModel" . | quote }}
{{- end -}}

{{/* The model the inference pods serve, as requests name it (tts_api/speech_models.py). */}}
{{- define "indextts.servedModel" -}}
{{- $engine := .Values.inference.engine -}}
{{- if eq $engine "auto" -}}{{- $engine = ternary "indextts2" "espeak" .Values.models.enabled -}}{{- end -}}
{{- get (dict "indextts2" "indextts-2" "indextts25" "indextts-2.5" "espeak" "espeak" "synthetic" "synthetic") $engine -}}
{{- end -}}

{{- define "indextts.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "indextts.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end -}}


{{/* The shared volume (the PVC the chart makes, or share.existingClaim). */}}
{{- define "indextts.shareVolume" -}}
- name: share
  persistentVolumeClaim:
    claimName: {{ include "indextts.shareClaimName" . }}
{{- end -}}

{{- define "indextts.operatorLeaseName" -}}
{{- include "indextts.componentName" (list . "operator") -}}
{{- end -}}

{{- /* What the operator does to TTSWorkflows and Events, wherever it watches. */}}
{{- define "indextts.operatorWorkflowRules" }}
  # get/list/watch: kopf's watch stream and the operator's re-reads of one workflow.
  # patch: kopf's finalizer and its last-handled annotation (merge patches on the object).
  # delete: finished workflows past their ttlSecondsAfterFinished.
  - apiGroups: [tts.indextts.io]
    resources: [ttsworkflows]
    verbs: [get, list, watch, patch, delete]
  # get/list/watch: the library voices, copied into the workers' bucket (they read no object).
  - apiGroups: [tts.indextts.io]
    resources: [ttsvoices]
    verbs: [get, list, watch]
  # patch: the operator is the one writer of status (merge patches on the status subresource).
  - apiGroups: [tts.indextts.io]
    resources: [ttsworkflows/status]
    verbs: [patch]
  {{- if ne .Values.operator.events "none" }}
  # create: Events on the workflows (operator.events: their failures and retries, or every
  # transition) and kopf's warnings about its handlers.
  - apiGroups: [""]
    resources: [events]
    verbs: [create]
  {{- end }}
{{- end }}
