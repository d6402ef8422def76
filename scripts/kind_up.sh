#!/usr/bin/env bash
# `make kind-up`: a kind cluster with the chart installed, ready for `make e2e`.
#   1. create the cluster from kind-config.yaml (kept when it exists)
#   2. load the images `make images` built
#   3. advertise fake nvidia.com/gpu capacity on each node (a status patch), so the GPU quota works
#   4. helm upgrade --install the chart with values-cpu.yaml and e2e/values-kind.yaml
# Settings (environment): KIND_CLUSTER (indextts), NAMESPACE (indextts), RELEASE (tts),
# VERSION (0.1.0), REGISTRY (ghcr.io/indextts-k8s), FAKE_GPUS (4), KUBECTL, HELM, KIND.
set -euo pipefail
cd "$(dirname "$0")/.."

KIND_CLUSTER=${KIND_CLUSTER:-indextts}
NAMESPACE=${NAMESPACE:-indextts}
RELEASE=${RELEASE:-tts}
VERSION=${VERSION:-0.1.0}
REGISTRY=${REGISTRY:-ghcr.io/indextts-k8s}
FAKE_GPUS=${FAKE_GPUS:-4}
KIND=${KIND:-kind}
KUBECTL=${KUBECTL:-.venv/bin/kubectl}
HELM=${HELM:-$(.venv/bin/python scripts/fetch_helm.py)}

command -v "$KIND" >/dev/null || { echo "kind-up: kind is not installed (https://kind.sigs.k8s.io)" >&2; exit 2; }
command -v docker >/dev/null || { echo "kind-up: docker is not installed" >&2; exit 2; }

if ! "$KIND" get clusters | grep -qx "$KIND_CLUSTER"; then
  "$KIND" create cluster --name "$KIND_CLUSTER" --config kind-config.yaml --wait 120s
fi
CONTEXT="kind-$KIND_CLUSTER"
kubectl_() { "$KUBECTL" --context "$CONTEXT" "$@"; }

for image in "gateway:$VERSION" "operator:$VERSION" "inference:$VERSION-cpu"; do
  "$KIND" load docker-image --name "$KIND_CLUSTER" "$REGISTRY/$image"
done

# Fake GPUs: an extended resource in the node's status capacity (the kubelet leaves it be). The
# scheduler and the ResourceQuota count nvidia.com/gpu as on a GPU node; the CPU image ignores it.
for node in $(kubectl_ get nodes -o name); do
  kubectl_ patch "$node" --subresource=status --type=json -p "[
    {\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"$FAKE_GPUS\"},
    {\"op\": \"add\", \"path\": \"/status/allocatable/nvidia.com~1gpu\", \"value\": \"$FAKE_GPUS\"}]"
done

"$HELM" upgrade --install "$RELEASE" charts/indextts \
  --kube-context "$CONTEXT" --namespace "$NAMESPACE" --create-namespace \
  --values charts/indextts/values-cpu.yaml --values e2e/values-kind.yaml \
  --wait --timeout 5m

echo
echo "kind-up: release $RELEASE is ready in namespace $NAMESPACE (context $CONTEXT)."
echo "  the gateway: http://localhost:8788 (API key: kubectl -n $NAMESPACE get secret $RELEASE-indextts-gateway-api-key -o jsonpath='{.data.api-key}' | base64 -d)"
echo "  the e2e suite: make e2e"
