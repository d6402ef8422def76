"""A real Kubernetes control plane and the project's processes on it, for the tests and benchmarks.

Not part of the product (nothing installs it): ``apiserver`` starts etcd, kube-apiserver and, when
asked, kube-controller-manager; ``components`` starts the operator, gateway and workers against such a
server as child processes; ``request_counts`` reads the server's own ``apiserver_request_total``.
"""
