"""The deployment files (security issue, parts 3 and 4), checked offline.

* `deploy/k8s/*.yaml` validate against the Kubernetes JSON schemas bundled in `kubernetes-validate`
  (strict: an unknown or misspelt field is an error), and every workload keeps each hardening rule;
  each rule is its own test, parametrised by workload and container, so a regression names both.
* `docker-compose.yml` validates against the Compose Specification schema vendored in `tests/data/`
  (see `compose-spec.NOTICE`), publishes ports on loopback only and pins every image.
* `deploy/Dockerfile` runs as a numeric user, pins its base image and installs from the lock files.
* `requirements.lock` pins every runtime dependency of `pyproject.toml`, exactly and with hashes (the other two
  locks, and what the production one must not hold: `tests/unit/test_locks.py`).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.kafka_acls import script_grants

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
COMPOSE_SCHEMA_NOTICE = ROOT / "tests" / "data" / "compose-spec.NOTICE"
LOCK = ROOT / "requirements.lock"
DIAGRAMS_LOCK = ROOT / "requirements-diagrams.lock"  # the optional `diagrams` extra (DIAGRAMS=true builds)
DIAGRAMS_PACKAGE = "service/queries/graph/"  # the only place that may import what that extra brings
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# The oldest Kubernetes we still deploy to and the newest schema the package bundles.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SERVICE_IMAGE = "registry.example.com/orderstatus"
USER_ID = 10001
# what each component may reach (DNS comes from the shared allow-dns policy)
EGRESS_PORTS = {
    "migrate": {53, 5432},
    "worker": {53, 5432, 9093},
    "notifier": {53, 5432, 9093, 587},
    "gateway": {53, 5432, 9093},
    "console": {53, 5432, 9093, 587},  # SMTP: an operator's email resend is sent from the console
}
GATEWAY_OPS_PORT = 8083  # the gateway's /healthz, /readyz, /metrics, /status (issue 23)
CONSOLE_OPS_PORT = 8084  # the console's, apart from its pages (issue 21)
OPS_PORTS = {"gateway": GATEWAY_OPS_PORT, "console": CONSOLE_OPS_PORT}
HTTP_PORTS = {"worker": 8080, "notifier": 8081, "gateway": 8082, "console": 8083}
PUBLIC_FACES = ("gateway", "console")  # ingress to their HTTP port from outside the namespace (the ingress controller)
AUTHENTICATED = ("worker", "gateway", "console")
KAFKA_CLIENTS = ("worker", "notifier", "gateway", "console")
MAIL_SENDERS = ("notifier", "console")
PROCESSES = ("worker", "notifier", "gateway", "console")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


# ---------------------------------------------------------------- loading the manifests

def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
MANIFEST_FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
APPLIED_FILES = [K8S / name for name in KUSTOMIZATION["resources"]]
APPLIED = [doc for path in APPLIED_FILES for doc in _documents(path)]
EXAMPLES = [doc for path in MANIFEST_FILES if path.name.endswith(".example.yaml") for doc in _documents(path)]
ALL_DOCS = [(path.name, doc) for path in MANIFEST_FILES for doc in _documents(path)]


def _of_kind(kind: str) -> list[dict]:
    return [doc for doc in APPLIED if doc["kind"] == kind]


def _component(doc: dict) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


WORKLOADS = {_component(doc): doc for doc in APPLIED if doc["kind"] in ("Deployment", "Job")}
DEPLOYMENTS = {name: doc for name, doc in WORKLOADS.items() if doc["kind"] == "Deployment"}
CONFIGMAPS = {doc["metadata"]["name"]: doc.get("data", {}) for doc in APPLIED if doc["kind"] == "ConfigMap"}
EXAMPLE_SECRETS = {doc["metadata"]["name"]: doc for doc in EXAMPLES if doc["kind"] == "Secret"}
POLICIES = _of_kind("NetworkPolicy")


def _pod(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def _pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def _containers(workload: dict) -> list[dict]:
    pod = _pod(workload)
    return pod.get("initContainers", []) + pod["containers"]


CONTAINERS = [
    pytest.param(workload, container, id=f"{name}/{container['name']}")
    for name, workload in WORKLOADS.items()
    for container in _containers(workload)
]
WORKLOAD_PARAMS = [pytest.param(workload, id=name) for name, workload in WORKLOADS.items()]


def _effective(workload: dict, container: dict, field: str):
    """A securityContext field as the kubelet sees it: the container's, else the pod's."""
    own = container.get("securityContext", {})
    return own[field] if field in own else _pod(workload).get("securityContext", {}).get(field)


def _env(container: dict) -> dict:
    """The container's environment: plain values as strings, `valueFrom` sources as their dicts."""
    env: dict = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"{container['name']}: envFrom other than a ConfigMap hides what is read"
        env.update(CONFIGMAPS[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        env[var["name"]] = var["value"] if "value" in var else var["valueFrom"]
    return env


def _main(workload: dict) -> dict:
    return _pod(workload)["containers"][0]


def _mounted(workload: dict, container: dict, path: str) -> dict:
    """The volume that holds `path` in `container` (the longest mount path that contains it)."""
    mounts = [m for m in container.get("volumeMounts", []) if path == m["mountPath"] or
              path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mounts, f"{container['name']}: nothing is mounted at {path}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volumes = {v["name"]: v for v in _pod(workload).get("volumes", [])}
    return volumes[mount["name"]]


def _mounted_file(workload: dict, container: dict, path: str) -> dict:
    """The ConfigMap/Secret source that puts the file `path` into `container`, read-only."""
    mounts = [m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mounts, f"{container['name']}: nothing is mounted above {path}"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    assert mount.get("readOnly") is True, f"{mount['name']} is mounted writable"
    relative = path[len(mount["mountPath"].rstrip("/")) + 1:]
    volume = _mounted(workload, container, path)
    sources = volume.get("projected", {}).get("sources", [volume])
    for source in sources:
        for kind in ("configMap", "secret"):
            if kind in source and relative in {item["path"] for item in source[kind].get("items", [])}:
                return {kind: source[kind]}
    raise AssertionError(f"no ConfigMap or Secret item of volume {mount['name']} provides {relative}")


def _secret_refs(workload: dict) -> dict[str, set[str]]:
    """Secret name -> the keys the workload reads from it (env, envFrom, volumes)."""
    refs: dict[str, set[str]] = {}
    for container in _containers(workload):
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                refs.setdefault(source["secretRef"]["name"], set()).add("*")
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.setdefault(ref["name"], set()).add(ref["key"])
    for volume in _pod(workload).get("volumes", []):
        sources = [volume, *volume.get("projected", {}).get("sources", [])]
        for source in sources:
            secret = source.get("secret")
            if secret:
                name = secret.get("secretName") or secret["name"]
                keys = {item["key"] for item in secret.get("items", [])} or {"*"}
                refs.setdefault(name, set()).update(keys)
    return refs


def _image_is_pinned(image: str) -> bool:
    """A digest, or a tag that is a version (has a digit) and not `latest`."""
    if DIGEST.search(image):
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and any(ch.isdigit() for ch in tag)


def _table_writes(sql: str | None = None) -> dict[str, dict[str, set[str]]]:
    """Role -> table -> the write privileges (INSERT, UPDATE, DELETE) the grants file gives it, each GRANT read for
    every role and table it names (column lists dropped)."""
    if sql is None:
        sql = (ROOT / "deploy" / "postgres-grants.sql").read_text()
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    writes: dict[str, dict[str, set[str]]] = {}
    for statement in (" ".join(s.split()) for s in code.split(";")):
        found = re.fullmatch(r"GRANT (.+?) ON (?!SEQUENCE|ALL|SCHEMA|DATABASE)(?:TABLE )?(.+?) TO (.+)", statement)
        if not found:
            continue
        privileges = {p.strip() for p in re.sub(r"\([^)]*\)", "", found[1]).split(",")}
        for role in (r.strip() for r in found[3].split(",")):
            for table in (t.strip() for t in found[2].split(",")):
                writes.setdefault(role, {}).setdefault(table, set()).update(privileges & {"INSERT", "UPDATE", "DELETE"})
    return {role: {table: ops for table, ops in tables.items() if ops} for role, tables in writes.items()}


# ---------------------------------------------------------------- schema validation

class TestManifestsAreValidKubernetes:
    @pytest.mark.parametrize("version", K8S_VERSIONS)
    @pytest.mark.parametrize("filename,doc", [
        pytest.param(name, doc, id=f"{name}:{doc['kind']}/{doc['metadata']['name']}") for name, doc in ALL_DOCS
    ])
    def test_every_manifest_validates_against_the_kubernetes_schema(self, filename, doc, version):
        """Each object in deploy/k8s (examples included) is valid for that Kubernetes version, strictly."""
        kubernetes_validate.validate(doc, version, strict=True)

    @pytest.mark.parametrize("breakage", ["misspelt field", "wrong type"])
    def test_the_schema_check_rejects_a_broken_manifest(self, breakage):
        """The validation above can fail: a misspelt field or a wrongly typed value is refused."""
        broken = copy.deepcopy(DEPLOYMENTS["worker"])
        container = _main(broken)
        if breakage == "misspelt field":
            container["securityContex"] = container.pop("securityContext")
        else:
            container["ports"][0]["containerPort"] = "eighty"
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)

    def test_kustomization_applies_every_manifest_but_the_examples(self):
        """No manifest is forgotten by `kubectl apply -k`, and no placeholder example is applied."""
        expected = {p.name for p in MANIFEST_FILES if not p.name.endswith(".example.yaml")}
        assert set(KUSTOMIZATION["resources"]) == expected

    def test_the_five_components_are_deployed(self):
        """The worker, notifier, gateway and console run as Deployments, migrations as a Job."""
        assert {name: doc["kind"] for name, doc in WORKLOADS.items()} == {
            "migrate": "Job", "worker": "Deployment", "notifier": "Deployment", "gateway": "Deployment",
            "console": "Deployment"}


# ---------------------------------------------------------------- hardening, per workload and container

class TestWorkloadHardening:
    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_runs_as_a_numeric_non_root_user(self, workload, container):
        """runAsNonRoot is set and the user and group are the image's numeric 10001, never 0."""
        assert _effective(workload, container, "runAsNonRoot") is True
        assert _effective(workload, container, "runAsUser") == USER_ID
        assert _effective(workload, container, "runAsGroup") == USER_ID

    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_cannot_escalate_privileges(self, workload, container):
        """allowPrivilegeEscalation is false and the container is not privileged."""
        context = container.get("securityContext", {})
        assert context.get("allowPrivilegeEscalation") is False
        assert context.get("privileged", False) is False

    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_root_filesystem_is_read_only_with_an_emptydir_tmp(self, workload, container):
        """readOnlyRootFilesystem is true and /tmp, the one writable place, is a size-limited emptyDir."""
        assert container.get("securityContext", {}).get("readOnlyRootFilesystem") is True
        tmp = _mounted(workload, container, "/tmp")
        assert "emptyDir" in tmp and tmp["emptyDir"].get("sizeLimit")

    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_drops_all_capabilities(self, workload, container):
        """capabilities drop ALL and add none."""
        capabilities = container.get("securityContext", {}).get("capabilities", {})
        assert capabilities.get("drop") == ["ALL"]
        assert not capabilities.get("add")

    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_uses_the_runtime_default_seccomp_profile(self, workload, container):
        """The effective seccomp profile is RuntimeDefault."""
        assert (_effective(workload, container, "seccompProfile") or {}).get("type") == "RuntimeDefault"

    @pytest.mark.parametrize("workload", WORKLOAD_PARAMS)
    def test_pod_runs_as_non_root_with_seccomp(self, workload):
        """The pod-level securityContext holds the same rules, for containers added later."""
        context = _pod(workload)["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == USER_ID
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}

    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_has_resource_requests_and_limits(self, workload, container):
        """CPU and memory are requested and limited, and no request exceeds its limit."""
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{kind} lack cpu or memory"

        def quantity(value) -> float:
            units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
            text = str(value)
            for suffix, factor in units.items():
                if text.endswith(suffix):
                    return float(text[: -len(suffix)]) * factor
            return float(text)

        for resource, request in resources["requests"].items():
            assert quantity(request) <= quantity(resources["limits"][resource]), resource

    @pytest.mark.parametrize("workload", [pytest.param(d, id=n) for n, d in DEPLOYMENTS.items()])
    def test_has_readiness_and_liveness_probes(self, workload):
        """Readiness polls /readyz and liveness /healthz, on a port the container declares."""
        container = _main(workload)
        ports = {p["name"] for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            check = container[probe]["httpGet"]
            assert check["path"] == path
            assert check["port"] in ports

    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_image_is_pinned(self, workload, container):
        """The image has an exact version tag or a digest, never :latest or no tag."""
        assert _image_is_pinned(container["image"]), container["image"]

    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_service_image_is_this_release(self, workload, container):
        """The service image's tag is pyproject's version, so a release cannot ship a stale image."""
        version = PYPROJECT["project"]["version"]
        assert container["image"].split("@")[0] == f"{SERVICE_IMAGE}:{version}"

    @pytest.mark.parametrize("workload", WORKLOAD_PARAMS)
    def test_no_kubernetes_api_token_is_mounted(self, workload):
        """No component talks to the API server, so its service-account token stays out of the pod."""
        assert _pod(workload)["automountServiceAccountToken"] is False
        assert _pod(workload)["serviceAccountName"] == f"orderstatus-{_component(workload)}"

    def test_namespace_enforces_the_restricted_pod_security_standard(self):
        """The API server itself refuses a pod of the namespace that breaks the rules above."""
        (namespace,) = _of_kind("Namespace")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert all(doc["metadata"].get("namespace", "orderstatus") == "orderstatus" for doc in APPLIED)


# ---------------------------------------------------------------- secrets

class TestSecrets:
    @pytest.mark.parametrize("workload", WORKLOAD_PARAMS)
    def test_each_component_reads_only_its_own_secret(self, workload):
        """A component reads one Secret, named after it, so no two components share credentials."""
        assert set(_secret_refs(workload)) == {f"orderstatus-{_component(workload)}"}

    @pytest.mark.parametrize("workload", WORKLOAD_PARAMS)
    def test_each_secret_holds_only_what_its_component_reads(self, workload):
        """The example Secret of a component has exactly the keys that component reads, no spare credential."""
        ((name, keys),) = _secret_refs(workload).items()
        assert "*" not in keys, "read the keys one by one, so the manifest says what is used"
        assert set(EXAMPLE_SECRETS[name]["stringData"]) == keys

    @pytest.mark.parametrize("workload,container", CONTAINERS)
    def test_no_credential_is_written_into_the_manifest(self, workload, container):
        """Passwords come from the Secret, and no database URL carries one."""
        for name, value in _env(container).items():
            if any(word in name for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert isinstance(value, dict) and "secretKeyRef" in value, name
        url = _env(container).get("ORDERSTATUS_DATABASE_URL")
        if url is not None:
            assert urlsplit(url).password is None

    def test_the_migration_role_is_the_only_ddl_role(self):
        """`migrate` logs in as orderstatus_migrator; the processes log in as other (DML-only) roles."""
        users = {name: urlsplit(_env(_main(w))["ORDERSTATUS_DATABASE_URL"]).username for name, w in WORKLOADS.items()}
        assert users.pop("migrate") == "orderstatus_migrator"
        assert users == {name: f"orderstatus_{name}" for name in PROCESSES}
        roles_sql = (ROOT / "deploy" / "postgres-roles.sql").read_text()
        for user in users.values():
            assert re.search(rf"CREATE ROLE {user}\s+LOGIN IN ROLE orderstatus_app\b", roles_sql), user
        assert not re.search(r"GRANT\s+(ALL|CREATE)[^;]*TO orderstatus_app", roles_sql)

    def test_each_process_role_gets_only_table_rights_of_its_own(self):
        """No table right goes to the shared orderstatus_app group (nor by default privileges); the grants file names
        each process role, gives the gateway no INSERT/UPDATE/DELETE beyond idempotency_keys, and no DDL to anyone."""
        roles_sql = (ROOT / "deploy" / "postgres-roles.sql").read_text()
        grants = (ROOT / "deploy" / "postgres-grants.sql").read_text()
        code = "\n".join(line for line in (roles_sql + grants).splitlines() if not line.lstrip().startswith("--"))
        assert "ALTER DEFAULT PRIVILEGES" not in code
        assert not re.search(r"ON\s+(ALL\s+)?TABLES?[^;]*TO\s+orderstatus_app", code)
        statements = [" ".join(s.split()) for s in code.split(";") if "GRANT" in s]
        for role in (f"orderstatus_{name}" for name in PROCESSES):
            assert any(s.endswith(f"TO {role}") or f"{role}," in s for s in statements), role
        gateway_writes = [s for s in statements if s.endswith("TO orderstatus_gateway")
                          and re.search(r"\b(INSERT|UPDATE|DELETE)\b", s)]
        assert gateway_writes == ["GRANT SELECT, INSERT ON idempotency_keys TO orderstatus_gateway"]
        assert not re.search(r"\b(CREATE|ALTER|DROP|TRUNCATE|ALL)\b", " ".join(statements).replace("ALL SEQUENCES", ""))

    def test_grants_cannot_hide_in_a_statement_for_several_roles(self):
        """Read as role by role: the gateway writes only Idempotency-Key bindings and its heartbeat row, and the
        console writes no order, history, rule or command record (a grant naming several roles counts for each)."""
        writes = _table_writes()
        assert writes["orderstatus_gateway"] == {"idempotency_keys": {"INSERT"},
                                                 "process_heartbeats": {"INSERT", "UPDATE", "DELETE"}}
        console = writes["orderstatus_console"]
        for table in ("orders", "order_history", "order_reservations", "order_coupons", "order_goods_out_notes",
                      "order_contacts", "statuses", "transitions", "rules_meta", "processed_commands",
                      "idempotency_keys", "consumer_positions"):
            assert table not in console, table
        assert console["console_audit"] == {"INSERT"}, "the audit is append-only"
        assert "UPDATE" not in console["outbox"], "the relay's marks are the relay's"

    def test_the_role_by_role_reading_sees_a_grant_to_several_roles(self):
        """The parser above can fail: a write hidden in a grant to several roles is attributed to each of them."""
        sql = "GRANT SELECT (a, b), INSERT, UPDATE ON t1, t2 TO orderstatus_worker, orderstatus_gateway;"
        assert _table_writes(sql)["orderstatus_gateway"] == {"t1": {"INSERT", "UPDATE"}, "t2": {"INSERT", "UPDATE"}}


# ---------------------------------------------------------------- transport security and authentication

class TestTransportSecurity:
    @pytest.mark.parametrize("workload", WORKLOAD_PARAMS)
    def test_postgres_urls_verify_the_server_certificate(self, workload):
        """The database URL has sslmode=verify-full and an sslrootcert that is a mounted CA file."""
        container = _main(workload)
        query = parse_qs(urlsplit(_env(container)["ORDERSTATUS_DATABASE_URL"]).query)
        assert query.get("sslmode") == ["verify-full"]
        (ca,) = query["sslrootcert"]
        assert _mounted_file(workload, container, ca)

    @pytest.mark.parametrize("name", KAFKA_CLIENTS)
    def test_kafka_clients_use_sasl_ssl(self, name):
        """Kafka is SASL_SSL with SCRAM-SHA-512, credentials from the Secret and a mounted broker CA."""
        workload = WORKLOADS[name]
        env = _env(_main(workload))
        assert env["ORDERSTATUS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["ORDERSTATUS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        for var in ("ORDERSTATUS_KAFKA_SASL_PLAIN_USERNAME", "ORDERSTATUS_KAFKA_SASL_PLAIN_PASSWORD"):
            assert env[var]["secretKeyRef"]["name"] == f"orderstatus-{name}", var
        assert _mounted_file(workload, _main(workload), env["ORDERSTATUS_KAFKA_SSL_CAFILE"])
        assert all(server.endswith(":9093") for server in env["ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS"].split(","))

    @pytest.mark.parametrize("name", MAIL_SENDERS)
    def test_notifier_sends_mail_with_starttls_and_credentials(self, name):
        """SMTP goes to the submission port 587 with STARTTLS and a login from the sender's own Secret (the notifier;
        the console, whose operators resend emails)."""
        env = _env(_main(WORKLOADS[name]))
        assert (env["ORDERSTATUS_SMTP_PORT"], env["ORDERSTATUS_SMTP_STARTTLS"]) == ("587", "true")
        for var in ("ORDERSTATUS_SMTP_USERNAME", "ORDERSTATUS_SMTP_PASSWORD"):
            assert env[var]["secretKeyRef"]["name"] == f"orderstatus-{name}", var

    @pytest.mark.parametrize("name", AUTHENTICATED)
    def test_actor_auth_is_required(self, name):
        """ACTOR_AUTH=required, with a JWKS mounted read-only from a ConfigMap/Secret, an issuer and an audience."""
        workload = WORKLOADS[name]
        container = _main(workload)
        env = _env(container)
        assert env["ORDERSTATUS_ACTOR_AUTH"] == "required"
        assert env["ORDERSTATUS_AUTH_ISSUER"] and env["ORDERSTATUS_AUTH_AUDIENCE"]
        assert _mounted_file(workload, container, env["ORDERSTATUS_AUTH_JWKS_FILE"])

    def test_the_gateway_signs_commands_with_a_key_from_its_secret(self):
        """Issue 23: the gateway's command-signing key is a file from its own Secret, mounted read-only."""
        workload = WORKLOADS["gateway"]
        container = _main(workload)
        path = _env(container)["ORDERSTATUS_GATEWAY_SIGNING_KEY_FILE"]
        assert _mounted_file(workload, container, path)["secret"]["secretName"] == "orderstatus-gateway"

    @pytest.mark.parametrize("name", list(DEPLOYMENTS))
    def test_http_listens_on_the_pod_interface(self, name):
        """ORDERSTATUS_HTTP_HOST is 0.0.0.0 in pods (the service default is loopback) and the port is declared."""
        container = _main(DEPLOYMENTS[name])
        assert _env(container)["ORDERSTATUS_HTTP_HOST"] == "0.0.0.0"
        assert [p["containerPort"] for p in container["ports"]] == [HTTP_PORTS[name]] + (
            [OPS_PORTS[name]] if name in OPS_PORTS else [])

    def test_each_workload_runs_its_command(self):
        """`orderstatus migrate|worker|notifier|gateway|console`, the gateway on ORDERSTATUS_GATEWAY_PORT 8082, the
        console on ORDERSTATUS_CONSOLE_PORT 8083."""
        assert {name: _main(w)["args"] for name, w in WORKLOADS.items()} == {
            name: [name] for name in ("migrate", *PROCESSES)}
        assert _env(_main(WORKLOADS["gateway"]))["ORDERSTATUS_GATEWAY_PORT"] == "8082"
        assert _env(_main(WORKLOADS["console"]))["ORDERSTATUS_CONSOLE_PORT"] == str(HTTP_PORTS["console"])


# ---------------------------------------------------------------- network policies and disruption budgets

def _selects(policy: dict, labels: dict) -> bool:
    selector = policy["spec"]["podSelector"]
    assert "matchExpressions" not in selector, "this check reads matchLabels only"
    return selector.get("matchLabels", {}).items() <= labels.items()


def _policies_for(workload: dict) -> list[dict]:
    return [p for p in POLICIES if _selects(p, _pod_labels(workload))]


class TestKafkaAcls:
    # what each process does on Kafka, and so all it may do (issue 23)
    NEEDS = {
        "worker": {("Read", "topic", "order-status.commands"), ("Read", "group", "orderstatus-worker"),
                   ("Write", "topic", "order-status.events"), ("Write", "topic", "order-status.commands.dlq")},
        "notifier": {("Read", "topic", "order-status.events"), ("Read", "group", "orderstatus-notifier")},
        "gateway": {("Write", "topic", "order-status.commands"), ("Read", "topic", "order-status.events")},
        # its dead-letter indexer's group and the DLQ; a redrive's produce; the lag of the two groups
        "console": {("Read", "topic", "order-status.commands.dlq"),
                    ("Read", "group", "orderstatus-worker-console-dlq-index"),
                    ("Write", "topic", "order-status.commands"), ("Describe", "topic", "order-status.events"),
                    ("Describe", "group", "orderstatus-worker"), ("Describe", "group", "orderstatus-notifier")},
    }

    def test_each_process_gets_exactly_what_it_does(self):
        """deploy/kafka-acls.sh grants each process user its own operations and nothing more: no wildcard, no All."""
        granted: dict[str, set] = {}
        for grant in script_grants():
            assert "*" not in grant.name and grant.operation not in ("All", "Alter", "AlterConfigs"), grant.line
            granted.setdefault(grant.principal, set()).add((grant.operation, grant.kind, grant.name))
        assert granted == self.NEEDS

    def test_the_readme_table_says_the_same(self):
        """deploy/k8s/README.md's ACL table lists the same grants per process."""
        readme = (ROOT / "deploy" / "k8s" / "README.md").read_text()
        for user, needs in self.NEEDS.items():
            (row,) = [line for line in readme.splitlines() if line.startswith(f"| {user} |")]
            for _, _, name in needs:
                assert f"`{name}`" in row, (user, name)


class TestNetworkPolicies:
    def test_default_deny_covers_every_pod(self):
        """One policy selects every pod of the namespace and allows nothing, in or out."""
        deny = [p for p in POLICIES if p["spec"]["podSelector"] == {}]
        assert len(deny) == 1
        spec = deny[0]["spec"]
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
        assert not spec.get("ingress") and not spec.get("egress")

    @pytest.mark.parametrize("workload", WORKLOAD_PARAMS)
    def test_egress_only_to_the_ports_the_component_needs(self, workload):
        """Postgres 5432, Kafka 9093, SMTP 587 (notifier only) and DNS: nothing else, and never to any port."""
        ports = set()
        for policy in _policies_for(workload):
            for rule in policy["spec"].get("egress", []):
                assert rule.get("ports"), f"{policy['metadata']['name']}: an egress rule without ports allows all"
                ports |= {p["port"] for p in rule["ports"]}
        assert ports == EGRESS_PORTS[_component(workload)]

    @pytest.mark.parametrize("workload", WORKLOAD_PARAMS)
    def test_egress_names_address_blocks_as_well_as_ports(self, workload):
        """Every egress rule but DNS names its servers' address block (never 0.0.0.0/0), one block per service."""
        import ipaddress

        blocks: dict[int, set[str]] = {}
        for policy in _policies_for(workload):
            for rule in policy["spec"].get("egress", []):
                ports = {p["port"] for p in rule["ports"]}
                if ports == {53}:
                    continue
                targets = rule.get("to") or []
                assert targets and all("ipBlock" in t for t in targets), (policy["metadata"]["name"], ports)
                for target in targets:
                    network = ipaddress.ip_network(target["ipBlock"]["cidr"])
                    assert network.prefixlen >= 16 and not target["ipBlock"].get("except"), network
                    for port in ports:
                        blocks.setdefault(port, set()).add(str(network))
        assert all(len(cidrs) == 1 for cidrs in blocks.values()), blocks

    def test_dns_egress_goes_only_to_kube_dns(self):
        """Port 53 is open towards the cluster DNS pods in kube-system, not towards any resolver."""
        for policy in POLICIES:
            for rule in policy["spec"].get("egress", []):
                if any(p["port"] == 53 for p in rule["ports"]):
                    assert rule["to"] == [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]

    @pytest.mark.parametrize("workload", WORKLOAD_PARAMS)
    def test_ingress_only_to_the_gateway_port_and_metrics_from_monitoring(self, workload):
        """The gateway and the console accept their public port, and Prometheus from `monitoring` on their ops
        port; worker and notifier only Prometheus from `monitoring`; migrate nothing."""
        name = _component(workload)
        rules = [rule for policy in _policies_for(workload) for rule in policy["spec"].get("ingress", [])]
        if name == "migrate":
            assert rules == []
            return
        assert all(rule.get("ports") for rule in rules), "an ingress rule without ports allows all"
        monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        if name not in PUBLIC_FACES:
            assert {p["port"] for rule in rules for p in rule["ports"]} == {HTTP_PORTS[name]}
            assert all(rule.get("from") == [monitoring] for rule in rules)
            return
        # the gateway (console): its seed APIs' (pages') port from anywhere, its ops port from monitoring only
        public = [rule for rule in rules if not rule.get("from")]
        assert {p["port"] for rule in public for p in rule["ports"]} == {HTTP_PORTS[name]}
        assert all(rule.get("from") == [monitoring] for rule in rules if rule not in public)
        assert {p["port"] for rule in rules if rule not in public for p in rule["ports"]} == {OPS_PORTS[name]}

    @pytest.mark.parametrize("name", list(OPS_PORTS))
    def test_the_public_service_exposes_only_the_seed_apis_or_the_pages(self, name):
        """/metrics, /status and the probes of the gateway and the console are on their ops port, which the
        public Service does not expose."""
        container = _main(DEPLOYMENTS[name])
        assert _env(container)[f"ORDERSTATUS_{name.upper()}_OPS_PORT"] == str(OPS_PORTS[name])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": HTTP_PORTS[name], "ops": OPS_PORTS[name]}
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] == "ops"
        (service,) = [s for s in _of_kind("Service") if s["metadata"]["name"] == f"orderstatus-{name}"]
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(HTTP_PORTS[name], "http")]

    def test_the_console_cookie_is_secure_behind_the_tls_terminating_ingress(self):
        """The pod sees plain HTTP from the ingress: ORDERSTATUS_CONSOLE_SECURE_COOKIE=true keeps the cookie Secure."""
        assert _env(_main(DEPLOYMENTS["console"]))["ORDERSTATUS_CONSOLE_SECURE_COOKIE"] == "true"

    @pytest.mark.parametrize("workload", [pytest.param(d, id=n) for n, d in DEPLOYMENTS.items()])
    def test_every_deployment_has_a_disruption_budget(self, workload):
        """A PodDisruptionBudget selects the Deployment's pods and lets a drain take one at a time at most."""
        budgets = [b for b in _of_kind("PodDisruptionBudget")
                   if b["spec"]["selector"]["matchLabels"].items() <= _pod_labels(workload).items()]
        assert len(budgets) == 1
        assert budgets[0]["spec"].get("maxUnavailable") == 1 or budgets[0]["spec"].get("minAvailable")


# ---------------------------------------------------------------- docker-compose.yml (the dev stack)

COMPOSE_DOC = yaml.safe_load(COMPOSE.read_text())
COMPOSE_SERVICES = COMPOSE_DOC["services"]


def _host_ip(port) -> str | None:
    """The host address one entry of a service's `ports` binds to; None means every interface."""
    if isinstance(port, dict):
        return port.get("host_ip")
    text = str(port).split("/")[0]
    if text.startswith("["):                         # [::1]:8080:8080
        return text[1:].partition("]")[0]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else None     # "8080" and "8080:8080" bind every interface


class TestComposeFile:
    def test_vendored_schema_is_the_one_its_notice_names(self):
        """tests/data/compose-spec.json is byte for byte the upstream file named in compose-spec.NOTICE."""
        digest = hashlib.sha256(COMPOSE_SCHEMA.read_bytes()).hexdigest()
        assert f"SHA-256:  {digest}" in COMPOSE_SCHEMA_NOTICE.read_text()

    def test_validates_against_the_compose_specification(self):
        """docker-compose.yml is a valid Compose file (the Compose Specification JSON Schema)."""
        jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text())).validate(COMPOSE_DOC)

    def test_the_schema_check_rejects_a_broken_compose_file(self):
        """The validation above can fail: a misspelt service key is refused."""
        broken = copy.deepcopy(COMPOSE_DOC)
        broken["services"]["worker"]["prots"] = broken["services"]["worker"].pop("ports")
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text())).validate(broken)

    def test_is_marked_as_a_development_stack(self):
        """The file says, before anything else, that it is a dev stack and not for production."""
        header = COMPOSE.read_text().split("\nname:")[0]
        assert "DEVELOPMENT STACK" in header and "NOT FOR PRODUCTION" in header

    @pytest.mark.parametrize("service", list(COMPOSE_SERVICES))
    def test_published_ports_bind_to_loopback_only(self, service):
        """Every published port is bound to 127.0.0.1 (or ::1), never to all interfaces."""
        for port in COMPOSE_SERVICES[service].get("ports", []):
            assert _host_ip(port) in ("127.0.0.1", "::1"), port

    def test_loopback_check_catches_an_open_port(self):
        """The port parser sees the forms that publish on every interface."""
        assert _host_ip("8080") is None and _host_ip("8080:8080") is None
        assert _host_ip("0.0.0.0:8080:8080") == "0.0.0.0"
        assert _host_ip({"target": 8080, "published": 8080}) is None
        assert _host_ip("127.0.0.1:8025:8025") == "127.0.0.1" and _host_ip("[::1]:80:80/tcp") == "::1"

    @pytest.mark.parametrize("service", list(COMPOSE_SERVICES))
    def test_images_are_pinned_to_exact_versions(self, service):
        """Every service names its image with an exact version tag or digest, never :latest or no tag."""
        image = COMPOSE_SERVICES[service].get("image")
        assert image and _image_is_pinned(image), image

    @pytest.mark.parametrize("service", [s for s, d in COMPOSE_SERVICES.items() if "build" in d])
    def test_service_containers_run_hardened(self, service):
        """The service image runs as in production: uid 10001, read-only root, no capabilities."""
        definition = COMPOSE_SERVICES[service]
        assert definition["user"] == f"{USER_ID}:{USER_ID}" and definition["read_only"] is True
        assert definition["cap_drop"] == ["ALL"] and "no-new-privileges:true" in definition["security_opt"]
        assert "/tmp" in definition["tmpfs"]


# ---------------------------------------------------------------- deploy/Dockerfile

def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())]


DOCKER = _instructions(DOCKERFILE.read_text())


def _stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """(FROM arguments, the instructions of that stage) for each stage."""
    stages: list = []
    for instruction, args in DOCKER:
        if instruction == "FROM":
            stages.append((args, []))
        elif stages:
            stages[-1][1].append((instruction, args))
    return stages


class TestDockerfile:
    def test_runs_as_a_numeric_non_root_user(self):
        """The final USER is numeric uid:gid 10001, which runAsNonRoot can verify."""
        users = [args for instruction, args in _stages()[-1][1] if instruction == "USER"]
        assert users and users[-1] == f"{USER_ID}:{USER_ID}"

    def test_base_image_is_pinned_by_version_and_digest(self):
        """Every FROM is an earlier stage or an image with an exact version tag and a sha256 digest."""
        stages: set[str] = set()
        for args in [a for i, a in DOCKER if i == "FROM"]:
            image, alias = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE).groups()
            if image not in stages:
                assert DIGEST.search(image), f"no digest: {image}"
                tag = image.split("@")[0].rpartition(":")[2]
                assert re.match(r"\d+\.\d+\.\d+", tag), f"no exact version tag: {image}"
            stages.add(alias)

    def test_installs_from_the_lock_file_with_hashes(self):
        """The lock is copied in and installed with --require-hashes (the diagrams lock too, when asked for);
        nothing else is installed from an index."""
        runs = " && ".join(args for instruction, args in DOCKER if instruction == "RUN")
        assert any(i == "COPY" and "requirements.lock" in a for i, a in DOCKER)
        installs = re.findall(r"pip install ([^&;]*)", runs)
        assert any("--require-hashes" in cmd and "-r requirements.lock" in cmd for cmd in installs)
        for cmd in installs:
            locked = re.search(r"-r requirements(-diagrams)?\.lock", cmd) and "--require-hashes" in cmd
            assert locked or ("--no-index" in cmd and "--no-deps" in cmd), cmd

    def test_final_stage_installs_nothing_and_drops_the_installers(self):
        """The runtime stage installs no package (no compiler, no pip install) and removes pip itself."""
        final = " ".join(args for instruction, args in _stages()[-1][1] if instruction == "RUN")
        assert not re.search(r"apt-get install|apk add|pip install", final)
        assert re.search(r"pip uninstall --yes pip", final)

    def test_entrypoint_is_orderstatus(self):
        """The image's entrypoint is the `orderstatus` command."""
        assert [args for instruction, args in DOCKER if instruction == "ENTRYPOINT"][-1] == '["orderstatus"]'


# ---------------------------------------------------------------- requirements.lock

def _lock_pins(lock: Path = LOCK) -> dict[str, tuple[str, int]]:
    """Package name -> (pinned specifier, number of hashes), from requirements.lock (or another lock)."""
    pins: dict[str, tuple[str, int]] = {}
    text = re.sub(r"\\\n", " ", lock.read_text())
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split(" --hash=")
        req = Requirement(requirement.strip())
        pins[canonicalize_name(req.name)] = (str(req.specifier), sum(o.startswith("sha256:") for o in options))
    return pins


REGENERATE = "regenerate it with the command in the header of requirements.lock"


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the files of service/ that import it; devkit is left out (never in the image)."""
    imports: dict[str, set[str]] = {}
    for path in (ROOT / "service").rglob("*.py"):
        if "devkit" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) - {"service", "__future__"}:
                imports.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return imports


class TestLockFile:
    @pytest.mark.parametrize("dependency", PYPROJECT["project"]["dependencies"])
    def test_pins_every_runtime_dependency_of_pyproject(self, dependency):
        """Each [project] dependency is pinned with == to a version its pyproject range admits."""
        requirement = Requirement(dependency)
        pins = _lock_pins()
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: {REGENERATE}"
        specifier = pins[name][0]
        assert specifier.startswith("==") and "," not in specifier, specifier
        assert requirement.specifier.contains(specifier[2:], prereleases=True), \
            f"{name}{specifier} is outside {requirement.specifier}: {REGENERATE}"

    def test_locks_every_package_the_service_imports(self):
        """Each third-party module that service/ imports (devkit aside) comes from a locked distribution; only
        the graph package may import one of the diagrams lock instead (grandalf: looked up when asked for)."""
        pins, optional = set(_lock_pins()), set(_lock_pins(DIAGRAMS_LOCK))
        provided = packages_distributions()
        imports = _third_party_imports()
        assert "aiokafka" in imports and "grandalf" in imports, "the import scan found nothing"

        def locked(module: str, files: set[str]) -> bool:
            distributions = {canonicalize_name(d) for d in provided.get(module, [])}
            return bool(distributions & pins) or (bool(distributions & optional)
                                                   and all(f.startswith(DIAGRAMS_PACKAGE) for f in files))

        missing = {module: sorted(files) for module, files in imports.items() if not locked(module, files)}
        assert not missing, f"imported but not locked (declare it in pyproject, then {REGENERATE}): {missing}"

    def test_every_pin_is_exact_and_hashed(self):
        """Every line of the lock is name==version with at least one sha256 hash (pip --require-hashes)."""
        pins = _lock_pins()
        assert pins
        for name, (specifier, hashes) in pins.items():
            assert re.fullmatch(r"==[\w.+!-]+", specifier), f"{name}{specifier}"
            assert hashes >= 1, f"{name} has no hash"
