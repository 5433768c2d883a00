{{/* The replicator sidecar container of the example StatefulSet (a regular or a native sidecar). */}}
{{- define "haproxy-peers.exampleSidecar" -}}
{{- $sidecar := .Values.example.sidecar -}}
- name: sidecar
  image: {{ include "haproxy-peers.image" (dict "root" . "image" $sidecar.image) }}
  imagePullPolicy: {{ $sidecar.image.pullPolicy }}
  {{- if $sidecar.native }}
  # A native sidecar (an init container that keeps running): starts before HAProxy, stops after.
  restartPolicy: Always
  {{- end }}
  # Everything else (ports, members, tables) comes from members.yaml in the mounted ConfigMap.
  args:
  - run
  - --pod-name=$(POD_NAME)
  - --config-dir=/etc/haproxy-peers
  - --tls-dir=/etc/haproxy-peers/tls
  env:
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  ports:
  - name: peers-admin
    containerPort: {{ $sidecar.adminPort }}
    protocol: TCP
  # The pod's readiness: /readyz answers 200 once the sidecar holds the full table and has
  # taught it to HAProxy (or the group's resyncTimeout passed), and names what is pending before.
  readinessProbe:
    httpGet:
      path: /readyz
      port: peers-admin
    periodSeconds: 2
    timeoutSeconds: 2
    failureThreshold: 2
  livenessProbe:
    httpGet:
      path: /healthz
      port: peers-admin
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  resources:
    {{- toYaml $sidecar.resources | nindent 4 }}
  securityContext:
    {{- include "haproxy-peers.containerSecurityContext" . | nindent 4 }}
    runAsUser: 65532
    runAsGroup: 65532
  volumeMounts:
  - name: peers
    mountPath: /etc/haproxy-peers
    readOnly: true
  - name: peer-tls
    mountPath: /etc/haproxy-peers/tls
    readOnly: true
{{- end -}}
