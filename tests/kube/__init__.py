"""Tests against a real Kubernetes API server (kube-apiserver and etcd, started by the tests)."""
