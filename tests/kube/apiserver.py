"""Moved to :mod:`kube_testbed.apiserver` (re-exported here while callers move)."""

from kube_testbed.apiserver import *  # noqa: F403
from kube_testbed.apiserver import REPO, binary_version, crd_for_server, without_cel_rules  # noqa: F401
