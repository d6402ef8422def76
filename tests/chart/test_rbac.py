"""RBAC exactly as intended: each ServiceAccount's rights, as a table."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kube_testbed.helm import Helm, Manifest, component

# (binding kind, namespace or "*" for cluster-wide, apiGroup, resource, resourceNames, verbs)
Right = tuple[str, str, str, str, tuple[str, ...], tuple[str, ...]]

WORKFLOWS = ("tts.indextts.io", "ttsworkflows")
STATUS = ("tts.indextts.io", "ttsworkflows/status")
VOICES = ("tts.indextts.io", "ttsvoices")
EVENTS = ("", "events")
OPERATOR_VERBS = ("delete", "get", "list", "patch", "watch")
LEASE = component("operator")


def operator_in(kind: str, namespace: str) -> set[Right]:
    return {
        (kind, namespace, *WORKFLOWS, (), OPERATOR_VERBS),
        (kind, namespace, *STATUS, (), ("patch",)),
        (kind, namespace, *VOICES, (), ("get", "list", "watch")),
        (kind, namespace, *EVENTS, (), ("create",)),
    }


LEADER_LEASE: set[Right] = {
    ("Role", "speech", "coordination.k8s.io", "leases", (), ("create",)),
    ("Role", "speech", "coordination.k8s.io", "leases", (LEASE,), ("get", "patch")),
}
GATEWAY: set[Right] = {
    ("Role", "speech", *WORKFLOWS, (), ("create", "delete", "get", "list", "watch")),
    ("Role", "speech", *VOICES, (), ("create", "delete", "get", "list")),
    ("Role", "speech", "", "resourcequotas", (), ("get", "list")),
}

CASES: dict[str, tuple[Sequence[str], dict[str, set[Right]]]] = {
    "one namespace (default)": (
        (),
        {
            component("gateway"): GATEWAY,
            component("operator"): operator_in("Role", "speech") | LEADER_LEASE,
        },
    ),
    "extra namespaces": (
        ("operator.extraWatchNamespaces={team-a,team-b}",),
        {
            component("gateway"): GATEWAY,
            component("operator"): operator_in("Role", "speech")
            | operator_in("Role", "team-a")
            | operator_in("Role", "team-b")
            | LEADER_LEASE,
        },
    ),
    "all namespaces": (
        ("operator.watchAllNamespaces=true",),
        {
            component("gateway"): GATEWAY,
            component("operator"): operator_in("ClusterRole", "*") | LEADER_LEASE,
        },
    ),
    "no Events": (
        ("operator.events=none",),
        {
            component("gateway"): GATEWAY,
            component("operator"): (
                operator_in("Role", "speech") - {("Role", "speech", *EVENTS, (), ("create",))}
            )
            | LEADER_LEASE,
        },
    ),
    "no leader election": (
        ("operator.leaderElection=false",),
        {
            component("gateway"): GATEWAY,
            component("operator"): operator_in("Role", "speech"),
        },
    ),
}


def rights(docs: Sequence[Manifest]) -> dict[str, set[Right]]:
    """ServiceAccount name -> every right its bindings grant."""
    roles = {(doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc for doc in docs}
    granted: dict[str, set[Right]] = {}
    for binding in docs:
        if binding["kind"] not in {"RoleBinding", "ClusterRoleBinding"}:
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace")
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        scope = namespace if binding["kind"] == "RoleBinding" else "*"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            assert subject["namespace"] == "speech", subject
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        granted.setdefault(subject["name"], set()).add(
                            (
                                role["kind"],
                                scope,
                                group,
                                resource,
                                tuple(sorted(rule.get("resourceNames", []))),
                                tuple(sorted(rule["verbs"])),
                            )
                        )
    return granted


@pytest.mark.parametrize(("set_values", "expected"), CASES.values(), ids=CASES.keys())
def test_each_service_account_gets_exactly_its_rights(
    helm: Helm, set_values: Sequence[str], expected: dict[str, set[Right]]
) -> None:
    assert rights(helm.template(set_values=set_values)) == expected


def test_no_rule_uses_wildcards_or_touches_secrets(helm: Helm) -> None:
    for values in CASES.values():
        for doc in helm.template(set_values=values[0]):
            for rule in doc.get("rules", []) if doc["kind"] in {"Role", "ClusterRole"} else []:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], (doc["metadata"]["name"], rule)
                assert "secrets" not in rule["resources"]
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_the_operator_watches_the_namespaces_its_roles_cover(helm: Helm) -> None:
    from kube_testbed.helm import env_of, named

    for set_values, expected in (
        ((), "speech"),
        (("operator.extraWatchNamespaces={team-a}",), "speech,team-a"),
        (("operator.watchAllNamespaces=true",), ""),
    ):
        deployment = named(helm.template(set_values=set_values), "Deployment", component("operator"))
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["TTS_OPERATOR_NAMESPACES"] == expected, set_values
        assert env["TTS_OPERATOR_LEASE_NAME"] == LEASE
        assert env["TTS_OPERATOR_LEASE_NAMESPACE"] == "speech"


def operator_doc_rights() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of docs/operator.md's "RBAC: what the operator calls" table."""
    import re

    from kube_testbed.helm import REPO

    path = REPO / "docs" / "operator.md"
    if not path.exists():
        pytest.skip("docs/operator.md is not there yet")
    text = path.read_text()
    section = text.split("## RBAC: what the operator calls", 1)[1].split("\n## ", 1)[0]
    needed: set[tuple[str, str, str]] = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        group = re.findall(r"`([^`]*)`", cells[0])[0].strip('"')
        (resource,) = re.findall(r"`([^`]*)`", cells[1])
        if resource == "namespaces":
            continue  # optional: kopf falls back to the named namespaces (docs/helm.md)
        for verb in re.findall(r"`([a-z]+)`", cells[2]):
            needed.add((group, resource, verb))
    assert needed, "the table was found and read"
    return needed


def test_the_operator_gets_every_right_its_own_docs_list(helm: Helm) -> None:
    granted = {
        (group, resource, verb)
        for _, _, group, resource, _, verbs in rights(helm.template())[component("operator")]
        for verb in verbs
    }
    assert operator_doc_rights() <= granted
