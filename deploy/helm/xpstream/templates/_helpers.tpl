{{- define "xpstream.labels" -}}
app.kubernetes.io/name: xpstream
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "xpstream.kafkaEnv" -}}
- name: XP_KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: XP_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
- name: XP_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.saslMechanism | quote }}
- name: XP_KAFKA_SSL_CA_LOCATION
  value: /etc/xpstream/kafka-ca/ca.crt
- name: XP_TOPIC_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: XP_REGISTRY_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.registrySigning.existingSecret }}
      key: signing-key
- name: XP_REGISTRY_VERIFY_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.registrySigning.existingSecret }}
      key: verify-keys
      optional: true
{{- end }}

{{- define "xpstream.clickhouseEnv" -}}
- name: XP_CLICKHOUSE_URL
  value: {{ .Values.clickhouse.url | quote }}
- name: XP_CLICKHOUSE_CLUSTER
  value: {{ .Values.clickhouse.cluster | quote }}
- name: XP_CLICKHOUSE_USER
  valueFrom:
    secretKeyRef:
      name: {{ .Values.clickhouse.existingSecret }}
      key: user
- name: XP_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.clickhouse.existingSecret }}
      key: password
- name: XP_HOME
  value: /var/lib/xpstream
{{- end }}
