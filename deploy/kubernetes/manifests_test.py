"""Renders every overlay of deploy/kubernetes with `kubectl kustomize` (offline), validates every
object against the Kubernetes OpenAPI schemas (validate_manifests.mjs, npm kubernetes-models),
and checks that the objects agree with each other and with the daemons:

- every --flag in a container's args exists in that binary's --helpfull;
- every $(VAR) a container uses is defined, every Secret/ConfigMap (and key) a pod reads is
  rendered or is one of the Secrets the operator provides (USER_SECRETS, make-secrets.sh);
- Services select pods and target declared ports; probes hit the --metrics_listen port (over
  HTTPS with --metrics_tls); the --listen and --advertise_address ports are the ones the
  Services expose;
- the network policies admit exactly what the security model needs (docs/operations.md);
- the overlays differ as documented (TLS and no development flag in production and gpu, GPUs
  only in gpu, anti-affinity, memlock capability, grace period above --drain_timeout,
  disruption budgets), and docs/operations.md names the Secrets the operator provides;
- make-secrets.sh writes token Secrets that match what the pods mount.

Each check is a function returning a list of errors; the mutation tests break a rendered object
and require the check to report it, so a check that accepts everything fails the suite.
Needs kubectl, node and the npm packages kubernetes-models and js-yaml (deploy/setup.sh) in
$STRATA_NPM_MODULES (default /usr/local/share/strata/npm/node_modules); skips without them.
"""

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

OVERLAYS = ("dev", "production", "gpu")
SECURE_OVERLAYS = ("production", "gpu")
BINARIES = {
    "strata-coordinator": "services/coordinator/strata-coordinator",
    "strata-worker": "services/worker/strata-worker",
}
# Development flags (docs/operations.md, Security model): never in production or gpu.
DEV_FLAGS = {
    "--serve_plaintext",
    "--insecure",
    "--allow_unauthenticated_workers",
    "--open_enrollment",
    "--allow_token_over_plaintext",
}
# Secrets the operator provides (cert-manager or their CA for TLS, make-secrets.sh for tokens),
# with the keys pods may read from them; None: keys named after the worker pods.
USER_SECRETS = {
    "strata-coordinator-tls": {"tls.crt", "tls.key", "ca.crt"},
    "strata-worker-tls": {"tls.crt", "tls.key", "ca.crt"},
    "strata-tokens": {"tokens", "worker-tokens", "client-tokens"},
    "strata-worker-tokens": None,
}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
VAR_RE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
FLAG_RE = re.compile(r"^    --([A-Za-z0-9_]+) \(", re.MULTILINE)
PORT_RANGE_SYSCTL = "net.ipv4.ip_local_port_range"


def npm_modules():
    return os.environ.get("STRATA_NPM_MODULES", "/usr/local/share/strata/npm/node_modules")


def source_dir():
    """deploy/kubernetes in the runfiles (under Bazel) or the source tree."""
    return os.path.dirname(os.path.abspath(__file__))


def binary_path(path):
    """A daemon from the test's data (runfiles), else from bazel-bin when run by hand."""
    return path if os.path.exists(path) else os.path.join("bazel-bin", path)


def run(argv, stdin=None):
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def render(kustomize_root, overlay):
    result = run(["kubectl", "kustomize", os.path.join(kustomize_root, "overlays", overlay)])
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize overlays/{overlay}: {result.stderr.strip()}")
    return result.stdout


def validate(yaml_text, where):
    """Validates a YAML stream with validate_manifests.mjs; returns its objects."""
    script = os.path.join(source_dir(), "validate_manifests.mjs")
    result = run(["node", script, npm_modules()], stdin=yaml_text)
    if result.returncode != 0:
        raise AssertionError(f"{where}: schema validation failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def help_flags(binary):
    """The flags `binary --helpfull` lists (absl exits 1 after printing help)."""
    result = run([binary, "--helpfull"])
    flags = set(FLAG_RE.findall(result.stdout + result.stderr))
    if not flags:
        raise AssertionError(f"{binary} --helpfull listed no flags:\n{result.stdout[:2000]}")
    return flags


# ----- Helpers over rendered objects -------------------------------------------------------


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def workloads(objects):
    """(object, pod template spec, pod labels) for every object that runs pods."""
    out = []
    for obj in objects:
        if obj["kind"] in ("StatefulSet", "Deployment", "DaemonSet", "Job"):
            template = obj["spec"]["template"]
            out.append((obj, template["spec"], template.get("metadata", {}).get("labels", {})))
    return out


def workload(objects, name):
    for obj, spec, labels in workloads(objects):
        if obj["metadata"]["name"] == name:
            return obj, spec, labels
    raise AssertionError(f"no workload {name}")


def flag_values(container):
    """--flag=value args as {"--flag": value} (a bare --flag maps to "true")."""
    values = {}
    for arg in container.get("args", []):
        name, _, value = arg.partition("=")
        values[name] = value if "=" in arg else "true"
    return values


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def seconds_of(duration):
    """An absl duration flag ("4m", "90s", "1h30m", "0") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    if duration != "0" and "".join(n + u for n, u in parts) != duration:
        raise AssertionError(f"not a duration: {duration!r}")
    return sum(float(n) * units[u] for n, u in parts)


def selects(selector, labels):
    """Whether a selector matches pod labels: a LabelSelector (matchLabels, matchExpressions;
    {} matches every pod) or a Service's plain map."""
    if selector is None:
        return False
    if "matchLabels" in selector or "matchExpressions" in selector:
        match, expressions = selector.get("matchLabels", {}), selector.get("matchExpressions", [])
    else:
        match, expressions = selector, []
    if any(labels.get(key) != value for key, value in match.items()):
        return False
    for expression in expressions:
        present, value = expression["key"] in labels, labels.get(expression["key"])
        operator = expression["operator"]
        if (operator == "In" and value not in expression["values"]) or \
                (operator == "NotIn" and value in expression["values"]) or \
                (operator == "Exists" and not present) or \
                (operator == "DoesNotExist" and present):
            return False
    return True


def resolve_port(spec, port):
    """A container port (number) of a pod spec for a port name or number, else None."""
    for container in spec["containers"]:
        for declared in container.get("ports", []):
            if port in (declared.get("name"), declared["containerPort"]):
                return declared["containerPort"]
    return None


def objects_named(objects, kind, name):
    return [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]


def all_containers(spec):
    return spec.get("initContainers", []) + spec["containers"]


# ----- Checks: each returns a list of error strings ----------------------------------------


def check_flags(objects, flags_by_binary):
    errors = []
    for obj, spec, _ in workloads(objects):
        for container in all_containers(spec):
            where = f"{name_of(obj)} container {container['name']}"
            command = container.get("command", [])
            binary = os.path.basename(command[0]) if command else ""
            if binary not in flags_by_binary:
                errors.append(f"{where}: runs {command!r}, not one of {sorted(flags_by_binary)}")
                continue
            for arg in container.get("args", []):
                if not arg.startswith("--"):
                    errors.append(f"{where}: argument {arg!r} is not a --flag")
                    continue
                flag = arg[2:].split("=", 1)[0]
                if flag not in flags_by_binary[binary]:
                    errors.append(f"{where}: --{flag} is not a flag of {binary} (--helpfull)")
    return errors


def config_map_keys(objects, name):
    maps = objects_named(objects, "ConfigMap", name)
    return set(maps[0].get("data", {})) | set(maps[0].get("binaryData", {})) if maps else None


def check_env_references(objects):
    """Every $(VAR) in command, args and subPathExpr is defined for the container."""
    errors = []
    for obj, spec, _ in workloads(objects):
        for container in all_containers(spec):
            where = f"{name_of(obj)} container {container['name']}"
            defined = {env["name"] for env in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    keys = config_map_keys(objects, source["configMapRef"]["name"])
                    defined |= {source.get("prefix", "") + k for k in keys or ()}
            uses = container.get("command", []) + container.get("args", [])
            uses += [m.get("subPathExpr", "") for m in container.get("volumeMounts", [])]
            for text in uses:
                for var in VAR_RE.findall(text):
                    if var not in defined:
                        errors.append(f"{where}: $({var}) in {text!r} is not defined")
    return errors


def check_references(objects):
    """Secrets, ConfigMaps and their keys that pods read; volume mounts and volumes."""
    errors = []

    def check(where, kind, name, keys):
        rendered = objects_named(objects, kind, name)
        if rendered:
            data = set(rendered[0].get("data", {})) | set(rendered[0].get("stringData", {}))
            data |= set(rendered[0].get("binaryData", {}))
            missing = set(keys) - data
        elif kind == "Secret" and name in USER_SECRETS:
            allowed = USER_SECRETS[name]
            missing = set() if allowed is None else set(keys) - allowed
        else:
            errors.append(f"{where}: {kind} {name} is neither rendered nor user-provided")
            return
        for key in sorted(missing):
            errors.append(f"{where}: {kind} {name} has no key {key}")

    for obj, spec, _ in workloads(objects):
        claims = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounted = set()
        for volume in volumes.values():
            where = f"{name_of(obj)} volume {volume['name']}"
            if "secret" in volume:
                keys = [i["key"] for i in volume["secret"].get("items", [])]
                check(where, "Secret", volume["secret"]["secretName"], keys)
            if "configMap" in volume:
                keys = [i["key"] for i in volume["configMap"].get("items", [])]
                check(where, "ConfigMap", volume["configMap"]["name"], keys)
        for container in all_containers(spec):
            where = f"{name_of(obj)} container {container['name']}"
            for source in container.get("envFrom", []):
                for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if field in source:
                        check(where, kind, source[field]["name"], [])
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if field in ref:
                        check(f"{where} env {env['name']}", kind, ref[field]["name"],
                              [ref[field]["key"]])
            for mount in container.get("volumeMounts", []):
                mounted.add(mount["name"])
                if mount["name"] not in volumes and mount["name"] not in claims:
                    errors.append(f"{where}: mounts {mount['name']}, which is no volume or claim")
        for unused in sorted((set(volumes) | claims) - mounted):
            errors.append(f"{name_of(obj)}: volume {unused} is mounted by no container")
    return errors


def check_services(objects):
    """Each Service selects pods, and each of its ports targets a port those pods declare."""
    errors = []
    for service in (o for o in objects if o["kind"] == "Service"):
        where = name_of(service)
        pods = [(o, s) for o, s, labels in workloads(objects)
                if selects(service["spec"].get("selector"), labels)]
        if not pods:
            errors.append(f"{where}: its selector matches no pod template")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for obj, spec in pods:
                if resolve_port(spec, target) is None:
                    errors.append(f"{where} port {port.get('name', port['port'])}: targetPort "
                                  f"{target} is no container port of {name_of(obj)}")
    return errors


def check_probes(objects):
    """HTTP probes hit /healthz or /readyz on the --metrics_listen port."""
    errors = []
    for obj, spec, _ in workloads(objects):
        for container in spec["containers"]:
            where = f"{name_of(obj)} container {container['name']}"
            metrics = flag_values(container).get("--metrics_listen")
            if not metrics:
                errors.append(f"{where}: no --metrics_listen for its probes")
                continue
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(kind)
                if probe is None:
                    if kind != "startupProbe":
                        errors.append(f"{where}: no {kind}")
                    continue
                http = probe.get("httpGet")
                if http is None:
                    errors.append(f"{where}: {kind} is not an HTTP probe of the operator endpoint")
                    continue
                port = resolve_port(spec, http["port"])
                if port != port_of(metrics):
                    errors.append(f"{where}: {kind} port {http['port']} ({port}) is not the "
                                  f"--metrics_listen port {port_of(metrics)}")
                scheme = "HTTPS" if "--metrics_tls" in flag_values(container) else "HTTP"
                if http.get("scheme", "HTTP") != scheme:
                    errors.append(f"{where}: {kind} asks {http.get('scheme', 'HTTP')}, the "
                                  f"operator endpoint serves {scheme}")
                want = "/readyz" if kind == "readinessProbe" else "/healthz"
                if http.get("path") != want:
                    errors.append(f"{where}: {kind} path {http.get('path')} is not {want}")
    return errors


def service_exposing(objects, spec, labels, container_port):
    """Services selecting these pods with a port whose target is container_port."""
    found = []
    for service in (o for o in objects if o["kind"] == "Service"):
        if not selects(service["spec"].get("selector"), labels):
            continue
        for port in service["spec"]["ports"]:
            if resolve_port(spec, port.get("targetPort", port["port"])) == container_port:
                found.append((service, port))
    return found


def check_addresses(objects):
    """--listen / --metrics_listen ports are declared and exposed; --coordinator and
    --advertise_address name the Services and ports that reach them."""
    errors = []
    for obj, spec, labels in workloads(objects):
        container = spec["containers"][0]
        flags = flag_values(container)
        where = f"{name_of(obj)} container {container['name']}"
        for flag, port_name in (("--listen", "grpc"), ("--metrics_listen", "http")):
            if flag not in flags:
                errors.append(f"{where}: no {flag}")
                continue
            port = port_of(flags[flag])
            if resolve_port(spec, port_name) != port:
                errors.append(f"{where}: {flag} port {port} is not its {port_name} container port "
                              f"({resolve_port(spec, port_name)})")
            if not service_exposing(objects, spec, labels, port):
                errors.append(f"{where}: no Service exposes its {flag} port {port}")
        if "--advertise_address" in flags:
            host, port = flags["--advertise_address"].rsplit(":", 1)
            if "--listen" in flags and int(port) != port_of(flags["--listen"]):
                errors.append(f"{where}: --advertise_address port {port} is not the --listen "
                              f"port")
            governing = obj["spec"].get("serviceName")
            headless = objects_named(objects, "Service", governing or "")
            if not headless or headless[0]["spec"].get("clusterIP") != "None":
                errors.append(f"{where}: serviceName {governing} is no headless Service")
            elif host != f"$(POD_NAME).{governing}.$(POD_NAMESPACE).svc":
                errors.append(f"{where}: --advertise_address host {host} is not the pod's name "
                              f"under the headless Service {governing}")
        if "--coordinator" in flags:
            host, port = flags["--coordinator"].rsplit(":", 1)
            service_name = host.split(".")[0]
            services = objects_named(objects, "Service", service_name)
            if not services:
                errors.append(f"{where}: --coordinator names no Service ({service_name})")
                continue
            ports = [p for p in services[0]["spec"]["ports"] if p["port"] == int(port)]
            if not ports:
                errors.append(f"{where}: --coordinator port {port} is no port of "
                              f"Service/{service_name}")
                continue
            for target_obj, target_spec, target_labels in workloads(objects):
                if selects(services[0]["spec"]["selector"], target_labels):
                    listen = flag_values(target_spec["containers"][0]).get("--listen", ":0")
                    target = resolve_port(target_spec, ports[0].get("targetPort", ports[0]["port"]))
                    if target != port_of(listen):
                        errors.append(f"{where}: --coordinator reaches port {target} of "
                                      f"{name_of(target_obj)}, which listens on "
                                      f"{port_of(listen)}")
    return errors


def gloo_range(spec):
    """The pod's pinned ephemeral port range (Gloo's listening ports), or None."""
    for sysctl in spec.get("securityContext", {}).get("sysctls", []):
        if sysctl["name"] == PORT_RANGE_SYSCTL:
            low, high = sysctl["value"].split()
            return int(low), int(high)
    return None


def is_worker(labels):
    return labels.get("app.kubernetes.io/component") == "worker"


def peer_kind(peer, objects):
    """'worker' (worker pods of this namespace), 'monitoring', 'client', or 'other'."""
    if "ipBlock" in peer:
        return "other"
    namespace_selector = peer.get("namespaceSelector")
    pod_selector = peer.get("podSelector")
    if namespace_selector is None:
        pods = [labels for _, _, labels in workloads(objects) if selects(pod_selector, labels)]
        return "worker" if pods and all(is_worker(labels) for labels in pods) else "other"
    if namespace_selector.get("matchLabels") == MONITORING and pod_selector is None:
        return "monitoring"
    if (pod_selector or namespace_selector).get("matchLabels") == {"strata/client": "true"}:
        return "client"
    return "other"


def check_network_policies(objects):
    """Default deny; then exactly: coordinator gRPC from workers and clients, Gloo between
    workers on their pinned range, operator endpoints from the monitoring namespace."""
    errors = []
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    if not any(p["spec"]["podSelector"] == {} and "Ingress" in p["spec"].get("policyTypes", [])
               and not p["spec"].get("ingress") for p in policies):
        errors.append("no default-deny ingress NetworkPolicy (podSelector {}, no rules)")
    for obj, spec, labels in workloads(objects):
        container = spec["containers"][0]
        flags = flag_values(container)
        where = name_of(obj)
        listen = port_of(flags["--listen"]) if "--listen" in flags else None
        metrics = port_of(flags["--metrics_listen"]) if "--metrics_listen" in flags else None
        gloo = gloo_range(spec) if is_worker(labels) else None
        if is_worker(labels) and gloo is None:
            errors.append(f"{where}: no {PORT_RANGE_SYSCTL} sysctl pinning the Gloo ports")
        # What the security model admits to this pod: (port or range) -> allowed peer kinds.
        allowed = {metrics: {"monitoring"}}
        if is_worker(labels):
            allowed[gloo] = {"worker"}
        else:
            allowed[listen] = {"worker", "client"}
        admitted = {}
        for policy in policies:
            if not selects(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"].get("ingress", []):
                pname = name_of(policy)
                if not rule.get("from"):
                    errors.append(f"{pname}: a rule admits every source to {where}")
                    continue
                if not rule.get("ports"):
                    errors.append(f"{pname}: a rule admits every port of {where}")
                    continue
                for port in rule["ports"]:
                    if port.get("protocol", "TCP") != "TCP":
                        errors.append(f"{pname}: admits {port.get('protocol')} to {where}")
                    number = resolve_port(spec, port["port"]) if "endPort" not in port \
                        else (port["port"], port["endPort"])
                    if number not in allowed:
                        errors.append(f"{pname}: admits port {port['port']}"
                                      f"{'-' + str(port['endPort']) if 'endPort' in port else ''}"
                                      f" of {where}, which the security model does not open "
                                      f"(open: {sorted(map(str, allowed))})")
                        continue
                    for peer in rule["from"]:
                        kind = peer_kind(peer, objects)
                        admitted.setdefault(number, set()).add(kind)
                        if kind not in allowed[number]:
                            errors.append(f"{pname}: admits {kind} peers {peer} to port "
                                          f"{number} of {where}")
        for port, kinds in allowed.items():
            missing = kinds - admitted.get(port, set())
            if missing:
                errors.append(f"{where}: port {port} is not admitted from {sorted(missing)}")
    return errors


def check_overlay(objects, overlay):
    """What distinguishes the overlays, and what every overlay needs."""
    errors = []
    coordinator_obj, coordinator_spec, _ = workload(objects, "strata-coordinator")
    worker_obj, worker_spec, worker_labels = workload(objects, "strata-worker")
    coordinator = coordinator_spec["containers"][0]
    worker = worker_spec["containers"][0]
    cflags, wflags = flag_values(coordinator), flag_values(worker)

    # The security mode is consistent and complete (else a daemon refuses to start).
    if ("--serve_plaintext" in cflags) != ("--insecure" in wflags):
        errors.append("coordinator --serve_plaintext and worker --insecure disagree")
    for where, flags in (("coordinator", cflags), ("worker", wflags)):
        if "--serve_plaintext" not in flags and not {"--tls_cert", "--tls_key"} <= set(flags):
            errors.append(f"{where}: neither --tls_cert/--tls_key nor --serve_plaintext")
    if "--worker_tokens_file" not in cflags and "--allow_unauthenticated_workers" not in cflags:
        errors.append("coordinator: no --worker_tokens_file nor --allow_unauthenticated_workers")
    if "--worker_token_file" in wflags and "--insecure" in wflags:
        errors.append("worker: a token file with --insecure (a worker token needs TLS)")
    if overlay in SECURE_OVERLAYS:
        for where, flags in (("coordinator", cflags), ("worker", wflags)):
            for flag in sorted(DEV_FLAGS & set(flags)):
                errors.append(f"{overlay}: {where} has the development flag {flag}")
        for flag in ("--tls_cert", "--tls_key", "--tokens_file", "--worker_tokens_file",
                     "--client_tokens_file", "--metrics_tls"):
            if flag not in cflags:
                errors.append(f"{overlay}: coordinator lacks {flag}")
        for flag in ("--tls_ca", "--worker_token_file", "--metrics_tls"):
            if flag not in wflags:
                errors.append(f"{overlay}: worker lacks {flag}")
        terms = worker_spec.get("affinity", {}).get("podAntiAffinity", {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution", [])
        if not any(t.get("topologyKey") == "kubernetes.io/hostname" and
                   selects(t.get("labelSelector"), worker_labels) for t in terms):
            errors.append(f"{overlay}: workers lack anti-affinity on kubernetes.io/hostname")

    # Worker identity, token and addresses.
    if wflags.get("--name") != "$(POD_NAME)":
        errors.append("worker: --name is not the pod's name $(POD_NAME)")
    env = {e["name"]: e for e in worker.get("env", [])}
    if env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get(
            "fieldPath") != "metadata.name":
        errors.append("worker: POD_NAME does not come from metadata.name")
    if "--worker_token_file" in wflags and not wflags["--worker_token_file"].endswith(
            "/$(POD_NAME)"):
        errors.append("worker: --worker_token_file is not the file named after the pod")
    if "node=$(NODE_NAME)" not in wflags.get("--labels", "").split(","):
        errors.append("worker: --labels lacks node=$(NODE_NAME)")

    # GPUs only in the gpu overlay, with the node selector and toleration.
    for obj, spec, _ in workloads(objects):
        for container in spec["containers"]:
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                if not resources.get(section):
                    errors.append(f"{name_of(obj)}: no resource {section}")
            has_gpu = "nvidia.com/gpu" in resources.get("requests", {})
            if has_gpu != (overlay == "gpu" and obj is worker_obj):
                errors.append(f"{overlay}: {name_of(obj)} nvidia.com/gpu requests: {has_gpu}")
            if has_gpu and resources["requests"]["nvidia.com/gpu"] != \
                    resources.get("limits", {}).get("nvidia.com/gpu"):
                errors.append(f"{name_of(obj)}: nvidia.com/gpu limits differ from requests")
    if overlay == "gpu":
        if not worker_spec.get("nodeSelector"):
            errors.append("gpu: workers have no node selector for GPU nodes")
        if not any(t.get("key") == "nvidia.com/gpu" for t in worker_spec.get("tolerations", [])):
            errors.append("gpu: workers do not tolerate the nvidia.com/gpu taint")

    # Pinned memory, graceful termination, volumes behind the daemons' directories.
    if "IPC_LOCK" not in worker.get("securityContext", {}).get("capabilities", {}).get("add", []):
        errors.append("worker: no IPC_LOCK capability for the pinned host slab")
    grace = worker_spec.get("terminationGracePeriodSeconds", 30)
    if grace < 300:
        errors.append("worker: terminationGracePeriodSeconds below 300 s (checkpoint + hand-over)")
    if "--drain_timeout" not in wflags:
        errors.append("worker: no --drain_timeout (the wait for a checkpoint after SIGTERM)")
    elif seconds_of(wflags["--drain_timeout"]) >= grace:
        errors.append(f"worker: --drain_timeout={wflags['--drain_timeout']} is not below "
                      f"terminationGracePeriodSeconds ({grace} s): the kubelet kills it first")
    if coordinator_obj["spec"].get("replicas") != 1:
        errors.append("coordinator: not exactly one replica")
    mounts = {m["mountPath"]: m["name"] for m in coordinator.get("volumeMounts", [])}
    claims = {t["metadata"]["name"]
              for t in coordinator_obj["spec"].get("volumeClaimTemplates", [])}
    if mounts.get(cflags.get("--data_dir")) not in claims:
        errors.append("coordinator: --data_dir is not on a volume claim template")
    wmounts = {m["mountPath"]: m["name"] for m in worker.get("volumeMounts", [])}
    if wflags.get("--work_dir") not in wmounts:
        errors.append("worker: --work_dir is not a mounted volume")
    volumes = {v["name"]: v for v in worker_spec.get("volumes", [])}
    for path in filter(None, wflags.get("--nvme_paths", "").split(",")):
        if "hostPath" not in volumes.get(wmounts.get(path), {}):
            errors.append(f"worker: --nvme_paths entry {path} is not a hostPath volume")
    if not wflags.get("--nvme_paths"):
        errors.append("worker: no --nvme_paths")

    # Disruption budgets cover both.
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for obj, _, labels in workloads(objects):
        if not any(selects(b["spec"]["selector"], labels) for b in budgets):
            errors.append(f"{name_of(obj)}: no PodDisruptionBudget selects its pods")
    return errors


ALL_CHECKS = (check_env_references, check_references, check_services, check_probes,
              check_addresses, check_network_policies)


class ManifestsTest(unittest.TestCase):
    rendered = {}
    objects = {}

    @classmethod
    def setUpClass(cls):
        for tool in ("kubectl", "node"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} is not installed (deploy/setup.sh installs it)")
        for package in ("kubernetes-models", "js-yaml"):
            if not os.path.isdir(os.path.join(npm_modules(), package)):
                raise unittest.SkipTest(f"npm package {package} is not in {npm_modules()} "
                                        f"(deploy/setup.sh installs it)")
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        # A real copy (runfiles are symlinks), so a test can break a file of its own copy.
        cls.root = os.path.join(cls.tmp, "kubernetes")
        shutil.copytree(source_dir(), cls.root, ignore=shutil.ignore_patterns("*.py", "BUILD*"))
        cls.flags = {name: help_flags(binary_path(path)) for name, path in BINARIES.items()}
        for overlay in OVERLAYS:
            cls.rendered[overlay] = render(cls.root, overlay)
            cls.objects[overlay] = validate(cls.rendered[overlay], f"overlays/{overlay}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assertNoErrors(self, errors, overlay):
        self.assertEqual(errors, [], f"overlays/{overlay}:\n" + "\n".join(errors))

    def test_overlays_render_and_validate(self):
        for overlay in OVERLAYS:
            objects = self.objects[overlay]
            kinds = {}
            for obj in objects:
                kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
            print(f"overlays/{overlay}: {len(objects)} objects "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})", file=sys.stderr)
            for kind in ("Namespace", "ConfigMap", "StatefulSet", "Service", "NetworkPolicy",
                         "PodDisruptionBudget"):
                self.assertIn(kind, kinds, f"overlays/{overlay} renders no {kind}")
            names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                     for o in objects]
            self.assertEqual(len(names), len(set(names)), f"overlays/{overlay}: duplicates")

    def test_validator_rejects_broken_objects(self):
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }
        validate(json.dumps(deployment), "a valid Deployment")  # The baseline passes.
        wrong_type = copy.deepcopy(deployment)
        wrong_type["spec"]["replicas"] = "two"
        unknown_field = copy.deepcopy(deployment)
        unknown_field["spec"]["template"]["spec"]["containers"][0]["contianerPorts"] = []
        missing = copy.deepcopy(deployment)
        del missing["spec"]["template"]["spec"]["containers"]
        unknown_kind = {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}
        for broken, expect in ((wrong_type, "replicas must be integer"),
                               (unknown_field, "contianerPorts: field not in"),
                               (missing, "containers"),
                               (unknown_kind, "no schema")):
            with self.assertRaises(AssertionError) as caught:
                validate(json.dumps(broken), "a broken object")
            self.assertIn(expect, str(caught.exception))

    def test_broken_file_fails_rendering_or_validation(self):
        worker = os.path.join(self.root, "base", "worker.yaml")
        with open(worker) as f:
            original = f.read()
        try:
            self.assertIn("terminationGracePeriodSeconds: 300", original)
            with open(worker, "w") as f:
                f.write(original.replace("terminationGracePeriodSeconds: 300",
                                         'terminationGracePeriodSeconds: "300"'))
            with self.assertRaises(AssertionError) as caught:
                validate(render(self.root, "dev"), "overlays/dev")
            self.assertIn("terminationGracePeriodSeconds must be integer", str(caught.exception))
        finally:
            with open(worker, "w") as f:
                f.write(original)

    def test_flags_exist_in_binaries(self):
        for overlay in OVERLAYS:
            self.assertNoErrors(check_flags(self.objects[overlay], self.flags), overlay)

    def test_cross_references(self):
        for overlay in OVERLAYS:
            for check in ALL_CHECKS:
                self.assertNoErrors(check(self.objects[overlay]), overlay)

    def test_user_secrets_are_used_and_documented(self):
        """The TLS overlays read exactly the Secrets USER_SECRETS lists, the dev overlay none,
        and docs/operations.md names each of them."""
        for overlay in OVERLAYS:
            used = set()
            for _, spec, _ in workloads(self.objects[overlay]):
                used |= {v["secret"]["secretName"] for v in spec.get("volumes", [])
                         if "secret" in v}
            want = set(USER_SECRETS) if overlay in SECURE_OVERLAYS else set()
            self.assertEqual(used, want, f"overlays/{overlay}: Secrets the pods mount")
        with open("docs/operations.md") as f:  # Runfiles (Bazel) or the repository root.
            docs = f.read()
        self.assertIn("## Kubernetes", docs)
        section = docs[docs.index("## Kubernetes"):]
        section = section[:section.find("\n## ", 1)]
        for name in list(USER_SECRETS) + [f"overlays/{o}" for o in ("dev",)] + \
                [f"`{o}`" for o in OVERLAYS] + ["make-secrets.sh", "LimitMEMLOCK", "IPC_LOCK"]:
            self.assertIn(name, section, f"docs/operations.md, Kubernetes, does not name {name}")

    def test_overlay_properties(self):
        for overlay in OVERLAYS:
            self.assertNoErrors(check_overlay(self.objects[overlay], overlay), overlay)

    def test_checks_catch_broken_manifests(self):
        """Every check reports a manifest broken the way it guards against."""

        def broken(overlay, mutate):
            objects = copy.deepcopy(self.objects[overlay])
            mutate(objects)
            return objects

        def container(objects, name):
            return workload(objects, name)[1]["containers"][0]

        def set_arg(objects, name, flag, value):
            args = container(objects, name)["args"]
            for i, arg in enumerate(args):
                if arg.split("=", 1)[0] == flag:
                    args[i] = f"{flag}={value}" if value is not None else None
            container(objects, name)["args"] = [a for a in args if a is not None]

        def service(objects, name):
            return objects_named(objects, "Service", name)[0]

        def policy(objects, name):
            return objects_named(objects, "NetworkPolicy", name)[0]

        cases = [
            ("misspelled flag", "dev", lambda o: check_flags(o, self.flags),
             lambda o: container(o, "strata-worker")["args"].append("--metrics_listn=:1"),
             "--metrics_listn is not a flag of strata-worker"),
            ("undefined variable", "dev", check_env_references,
             lambda o: container(o, "strata-worker")["args"].append("--cores=$(NO_SUCH_VAR)"),
             "$(NO_SUCH_VAR)"),
            ("missing Secret", "production", check_references,
             lambda o: [v["secret"].update(secretName="strata-tls-typo")
                        for v in workload(o, "strata-worker")[1]["volumes"] if "secret" in v],
             "Secret strata-tls-typo is neither rendered nor user-provided"),
            ("missing ConfigMap key", "dev", check_references,
             lambda o: container(o, "strata-worker")["env"].append(
                 {"name": "X", "valueFrom": {"configMapKeyRef": {
                     "name": container(o, "strata-worker")["envFrom"][0]["configMapRef"]["name"],
                     "key": "NO_SUCH_KEY"}}}),
             "has no key NO_SUCH_KEY"),
            ("wrong Service targetPort", "dev", check_services,
             lambda o: service(o, "strata-coordinator-http")["spec"]["ports"][0].update(
                 targetPort=9999),
             "targetPort 9999 is no container port"),
            ("probe on another port", "production", check_probes,
             lambda o: container(o, "strata-coordinator")["readinessProbe"]["httpGet"].update(
                 port="grpc"),
             "is not the --metrics_listen port"),
            ("metrics port moved", "dev", check_probes,
             lambda o: set_arg(o, "strata-worker", "--metrics_listen", "0.0.0.0:9999"),
             "is not the --metrics_listen port 9999"),
            ("gRPC port moved", "production", check_addresses,
             lambda o: set_arg(o, "strata-coordinator", "--listen", "[::]:7777"),
             "--listen port 7777 is not its grpc container port"),
            ("advertised port differs", "dev", check_addresses,
             lambda o: set_arg(o, "strata-worker", "--advertise_address",
                               "$(POD_NAME).strata-worker.$(POD_NAMESPACE).svc:7000"),
             "--advertise_address port 7000 is not the --listen port"),
            ("coordinator port differs", "dev", check_addresses,
             lambda o: set_arg(o, "strata-worker", "--coordinator",
                               "strata-coordinator.$(POD_NAMESPACE).svc:7071"),
             "--coordinator port 7071 is no port of Service/strata-coordinator"),
            ("no default deny", "production", check_network_policies,
             lambda o: o.remove(policy(o, "strata-default-deny")),
             "no default-deny"),
            ("metrics open to all namespaces", "production", check_network_policies,
             lambda o: policy(o, "strata-worker")["spec"]["ingress"][1]["from"][0].update(
                 namespaceSelector={}),
             "admits other peers"),
            ("policy on the wrong metrics port", "dev", check_network_policies,
             lambda o: policy(o, "strata-worker")["spec"]["ingress"][1]["ports"][0].update(
                 port=9092),
             "admits port 9092"),
            ("Gloo range differs from the sysctl", "gpu", check_network_policies,
             lambda o: policy(o, "strata-worker")["spec"]["ingress"][0]["ports"][0].update(
                 endPort=40000),
             "admits port 32768-40000"),
            ("worker gRPC opened", "dev", check_network_policies,
             lambda o: policy(o, "strata-worker")["spec"]["ingress"][0]["ports"].append(
                 {"protocol": "TCP", "port": 7071}),
             "admits port 7071"),
            ("development flag in production", "production",
             lambda o: check_overlay(o, "production"),
             lambda o: container(o, "strata-coordinator")["args"].append(
                 "--allow_unauthenticated_workers"),
             "development flag --allow_unauthenticated_workers"),
            ("GPUs outside the gpu overlay", "production",
             lambda o: check_overlay(o, "production"),
             lambda o: container(o, "strata-worker")["resources"]["requests"].update(
                 {"nvidia.com/gpu": "1"}),
             "nvidia.com/gpu requests: True"),
            ("no anti-affinity", "production", lambda o: check_overlay(o, "production"),
             lambda o: workload(o, "strata-worker")[1].pop("affinity"),
             "anti-affinity"),
            ("HTTP probe of an HTTPS endpoint", "gpu", check_probes,
             lambda o: container(o, "strata-worker")["livenessProbe"]["httpGet"].pop("scheme"),
             "livenessProbe asks HTTP, the operator endpoint serves HTTPS"),
            ("drain outlasts the grace period", "dev", lambda o: check_overlay(o, "dev"),
             lambda o: set_arg(o, "strata-worker", "--drain_timeout", "5m"),
             "--drain_timeout=5m is not below terminationGracePeriodSeconds"),
            ("no HTTPS operator endpoint", "production",
             lambda o: check_overlay(o, "production"),
             lambda o: set_arg(o, "strata-coordinator", "--metrics_tls", None),
             "coordinator lacks --metrics_tls"),
            ("short grace period", "dev", lambda o: check_overlay(o, "dev"),
             lambda o: workload(o, "strata-worker")[1].update(terminationGracePeriodSeconds=30),
             "terminationGracePeriodSeconds below 300"),
            ("no IPC_LOCK", "gpu", lambda o: check_overlay(o, "gpu"),
             lambda o: container(o, "strata-worker")["securityContext"]["capabilities"].update(
                 add=[]),
             "IPC_LOCK"),
        ]
        for label, overlay, check, mutate, expect in cases:
            with self.subTest(label):
                self.assertNoErrors(check(self.objects[overlay]), overlay)
                errors = check(broken(overlay, mutate))
                self.assertTrue(any(expect in e for e in errors),
                                f"{label}: expected an error with {expect!r}, got {errors}")

    def test_make_secrets_matches_the_manifests(self):
        script = os.path.join(source_dir(), "make-secrets.sh")
        for overlay in SECURE_OVERLAYS:
            worker_obj, worker_spec, _ = workload(self.objects[overlay], "strata-worker")
            replicas = worker_obj["spec"]["replicas"]
            out = os.path.join(self.tmp, f"tokens-{overlay}")
            result = run(["bash", script, f"--workers={replicas}", "--users=alice,bob",
                          "--operators=bob", out])
            self.assertEqual(result.returncode, 0, result.stderr)
            secrets = {s["metadata"]["name"]: s for s in validate(result.stdout, "make-secrets")}
            self.assertEqual(set(secrets), {"strata-tokens", "strata-worker-tokens"})
            # The keys pods read from the token Secrets are all there.
            referenced = {}
            for _, spec, _ in workloads(self.objects[overlay]):
                for volume in spec.get("volumes", []):
                    if "secret" in volume:
                        referenced[volume["secret"]["secretName"]] = [
                            i["key"] for i in volume["secret"].get("items", [])]
            for name, secret in secrets.items():
                self.assertIn(name, referenced, f"{name} is mounted by no pod")
                self.assertLessEqual(set(referenced[name]), set(secret["data"]), name)
            # One token per worker pod, under the pod's name, equal to its worker-tokens line.
            pods = {f"strata-worker-{i}" for i in range(replicas)}

            def decode(value):
                return base64.b64decode(value).decode()

            per_pod = {k: decode(v).strip() for k, v in secrets["strata-worker-tokens"]["data"]
                       .items()}
            self.assertEqual(set(per_pod), pods)
            lines = dict(reversed(line.split()) for line in
                         decode(secrets["strata-tokens"]["data"]["worker-tokens"]).splitlines())
            self.assertEqual(lines, per_pod)
            for token in per_pod.values():
                self.assertRegex(token, r"^[0-9a-f]{32}$")
            self.assertEqual(len(set(per_pod.values())), replicas, "tokens repeat")
            users = [line.split()[1:] for line in
                     decode(secrets["strata-tokens"]["data"]["tokens"]).splitlines()]
            self.assertEqual(users, [["alice"], ["bob", "role=operator"]])
            # Existing tokens are never replaced.
            again = run(["bash", script, f"--workers={replicas}", out])
            self.assertNotEqual(again.returncode, 0)
            self.assertIn("never replaced", again.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
