{{/* Name of every object: the release name, or <release>-iamra-bootstrap. */}}
{{- define "iamra.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "iamra.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "iamra.labels" -}}
{{ include "iamra.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "iamra.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "iamra.injectedImage" -}}
{{- default (include "iamra.image" .) .Values.injection.image -}}
{{- end -}}

{{- define "iamra.tlsSecret" -}}
{{- printf "%s-tls" (include "iamra.fullname" .) -}}
{{- end -}}

{{- define "iamra.serviceDNS" -}}
{{- printf "%s.%s.svc" (include "iamra.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* Fails rendering with a clear message when a required cluster default is missing. */}}
{{- define "iamra.validate" -}}
{{- $_ := required "injection.trustAnchorArn is required (arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/ID)" .Values.injection.trustAnchorArn -}}
{{- $_ := required "injection.profileArn is required (arn:aws:rolesanywhere:REGION:ACCOUNT:profile/ID)" .Values.injection.profileArn -}}
{{- if not (has .Values.injection.defaultSource (list "vault" "spiffe")) -}}
{{- fail (printf "injection.defaultSource must be vault or spiffe, not %q" .Values.injection.defaultSource) -}}
{{- end -}}
{{- if eq .Values.injection.defaultSource "vault" -}}
{{- $_ := required "injection.vaultAddr is required (the Vault or OpenBao URL)" .Values.injection.vaultAddr -}}
{{- $_ := required "injection.pkiRole is required (the Vault PKI role that signs the CSR)" .Values.injection.pkiRole -}}
{{- end -}}
{{- if not (has .Values.injection.defaultMode (list "init" "sidecar")) -}}
{{- fail (printf "injection.defaultMode must be init or sidecar, not %q" .Values.injection.defaultMode) -}}
{{- end -}}
{{- if not (has .Values.certificate.source (list "generate" "cert-manager")) -}}
{{- fail (printf "certificate.source must be generate or cert-manager, not %q" .Values.certificate.source) -}}
{{- end -}}
{{- if not (has .Values.webhook.failurePolicy (list "Fail" "Ignore")) -}}
{{- fail (printf "webhook.failurePolicy must be Fail or Ignore, not %q" .Values.webhook.failurePolicy) -}}
{{- end -}}
{{- if or (lt (int .Values.webhook.timeoutSeconds) 1) (gt (int .Values.webhook.timeoutSeconds) 30) -}}
{{- fail "webhook.timeoutSeconds must be 1 to 30" -}}
{{- end -}}
{{- end -}}
