"""Every call this project makes to the Kubernetes API server, in one place.

The gateway and the operator both use it: client configuration (:mod:`kube_access.client`), the
TTSWorkflow resource and its status (:mod:`kube_access.workflows`), and the few core objects around
it, Events, ResourceQuotas and the leader's Lease (:mod:`kube_access.cluster`). kopf watches the
resources for the operator; everything else goes through here. The official client is synchronous:
every call runs off the event loop (the leader election's in a thread of its own,
:mod:`kube_access.leader_election`), and its errors come out as this package's exceptions, so no
caller needs to know the client's types.
"""
