"""Checks a rendered Updraft deployment (`kubectl kustomize k8s/overlays/NAME > out.yaml`).

1. Every object, and the task pod template held in the ConfigMap `updraft-pod-template`, is
   validated strictly against the real Kubernetes schemas (kubernetes-validate, offline): a
   misspelled field, a wrong type or an unknown apiVersion/kind fails.
2. What schemas cannot see: selectors that match their pods, and every ConfigMap, Secret,
   ServiceAccount, PersistentVolumeClaim, Service, Role, StorageClass and volume that something
   refers to exists in the rendering.

    python check.py RENDERED.yaml [--commands OUT.json] [--config OUT.toml]

`--commands` writes the command line of every container that names one (for the test that
checks them against the CLI); `--config` writes the configuration file of `updraft-config`.
Exit status 1 and one line per problem on stderr when anything is wrong.
"""

import json
import sys

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.33.0"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
CLUSTER_SCOPED = {"Namespace", "StorageClass", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}


def main(argv):
    path = argv[1]
    options = dict(zip(argv[2::2], argv[3::2]))
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    problems = []
    objects = {}
    for doc in docs:
        key = (doc.get("kind"), namespace_of(doc), doc.get("metadata", {}).get("name"))
        if key in objects:
            problems.append(f"{label(doc)} is defined twice")
        objects[key] = doc
        problems += schema_problems(doc, label(doc))

    pods = []  # (label, namespace, pod spec, pod labels)
    for doc in docs:
        kind = doc.get("kind")
        if kind in WORKLOADS:
            template = doc["spec"]["template"]
            spec = dict(template["spec"])
            # A StatefulSet's claim templates are volumes of its pods too.
            claims = [{"name": c["metadata"]["name"], "claimTemplate": True} for c in doc["spec"].get("volumeClaimTemplates", [])]
            spec["volumes"] = spec.get("volumes", []) + claims
            pods.append((label(doc), namespace_of(doc), spec, template["metadata"].get("labels", {})))
            selector = doc["spec"].get("selector", {}).get("matchLabels", {})
            template_labels = template["metadata"].get("labels", {})
            if not selector or any(template_labels.get(k) != v for k, v in selector.items()):
                problems.append(f"{label(doc)}: selector {selector} does not match its template's labels {template_labels}")
        if kind == "ConfigMap" and "pod-template.yaml" in doc.get("data", {}):
            pod = yaml.safe_load(doc["data"]["pod-template.yaml"])
            where = f"{label(doc)} pod-template.yaml"
            problems += schema_problems(pod, where)
            pods.append((where, namespace_of(doc), pod.get("spec", {}), pod.get("metadata", {}).get("labels", {})))

    def exists(kind, namespace, name):
        return (kind, None if kind in CLUSTER_SCOPED else namespace, name) in objects

    for where, ns, spec, _ in pods:
        problems += pod_problems(where, ns, spec, exists, objects)

    for doc in docs:
        kind, ns, where = doc.get("kind"), namespace_of(doc), label(doc)
        meta = doc.get("metadata", {})
        if kind not in CLUSTER_SCOPED and not exists("Namespace", None, ns):
            problems.append(f"{where}: namespace {ns!r} is not in the rendering")
        if kind == "Service":
            matched = [p for p in pods if p[1] == ns and selects(doc["spec"].get("selector", {}), p[3])]
            if not matched:
                problems.append(f"{where}: its selector matches no pod")
            for port in doc["spec"].get("ports", []):
                target = port.get("targetPort")
                if isinstance(target, str) and not any(target in port_names(p[2]) for p in matched):
                    problems.append(f"{where}: targetPort {target!r} is no container port of its pods")
        if kind == "Ingress":
            for rule in doc["spec"].get("rules", []):
                for p in rule.get("http", {}).get("paths", []):
                    service = p["backend"]["service"]
                    target = objects.get(("Service", ns, service["name"]))
                    if target is None:
                        problems.append(f"{where}: backend Service {service['name']!r} does not exist")
                    elif "name" in service.get("port", {}) and service["port"]["name"] not in [
                        q.get("name") for q in target["spec"].get("ports", [])
                    ]:
                        problems.append(f"{where}: Service {service['name']!r} has no port {service['port']['name']!r}")
        if kind == "PodDisruptionBudget":
            if not any(p[1] == ns and selects(doc["spec"]["selector"].get("matchLabels", {}), p[3]) for p in pods):
                problems.append(f"{where}: its selector matches no pod")
        if kind == "RoleBinding":
            ref = doc["roleRef"]
            if not exists(ref["kind"], ns, ref["name"]):
                problems.append(f"{where}: {ref['kind']} {ref['name']!r} does not exist")
            for subject in doc.get("subjects", []):
                if subject["kind"] == "ServiceAccount" and not exists("ServiceAccount", subject.get("namespace", ns), subject["name"]):
                    problems.append(f"{where}: ServiceAccount {subject['name']!r} does not exist")
        if kind in ("PersistentVolumeClaim", "PersistentVolume"):
            spec = doc.get("spec", {})
            storage_class = spec.get("storageClassName")
            if storage_class and not exists("StorageClass", None, storage_class):
                problems.append(f"{where}: StorageClass {storage_class!r} is not in the rendering")
            if kind == "PersistentVolumeClaim" and spec.get("volumeName") and not exists("PersistentVolume", None, spec["volumeName"]):
                problems.append(f"{where}: PersistentVolume {spec['volumeName']!r} does not exist")
        if kind == "StatefulSet" and not exists("Service", ns, doc["spec"].get("serviceName")):
            problems.append(f"{where}: its serviceName {doc['spec'].get('serviceName')!r} is no Service")
        if kind == "Deployment" and meta.get("labels", {}).get("app.kubernetes.io/component") in ("scheduler", "api-server"):
            annotations = doc["spec"]["template"]["metadata"].get("annotations", {})
            if annotations.get("prometheus.io/scrape") != "true" or "prometheus.io/port" not in annotations:
                problems.append(f"{where}: no Prometheus scrape annotations on its pods")

    if "--commands" in options:
        commands = []
        for where, _, spec, _ in pods:
            for group in ("initContainers", "containers"):
                for c in spec.get(group, []):
                    if c.get("command"):
                        commands.append({"where": f"{where} {c['name']}", "argv": c["command"] + c.get("args", [])})
        with open(options["--commands"], "w", encoding="utf-8") as f:
            json.dump(commands, f)
    if "--config" in options:
        config = objects.get(("ConfigMap", "updraft", "updraft-config"))
        if config is None:
            problems.append("ConfigMap updraft-config is missing")
        else:
            with open(options["--config"], "w", encoding="utf-8") as f:
                f.write(config["data"]["updraft.toml"])

    for p in problems:
        print(p, file=sys.stderr)
    print(f"{path}: {len(docs)} objects, {len(problems)} problems")
    return 1 if problems else 0


def namespace_of(doc):
    if doc.get("kind") in CLUSTER_SCOPED:
        return None
    return doc.get("metadata", {}).get("namespace", "default")


def label(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def schema_problems(doc, where):
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        return [f"{where}: {path}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{where}: Kubernetes {KUBERNETES_VERSION} has no {doc.get('apiVersion')} {doc.get('kind')}"]
    except kubernetes_validate.InvalidSchemaError as e:
        return [f"{where}: {e!r}"]
    return []


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def port_names(spec):
    return {p.get("name") for c in spec.get("containers", []) for p in c.get("ports", [])}


def pod_problems(where, ns, spec, exists, objects):
    problems = []
    account = spec.get("serviceAccountName")
    if account is None and spec.get("automountServiceAccountToken") is not False:
        problems.append(
            f"{where}: no serviceAccountName: name one, or set automountServiceAccountToken: false if it never calls the API"
        )
    elif account is not None and not exists("ServiceAccount", ns, account):
        problems.append(f"{where}: ServiceAccount {account!r} does not exist")
    volumes = {}
    for v in spec.get("volumes", []):
        volumes[v["name"]] = v
        # An optional source may be absent: the kubelet mounts an empty folder.
        if "configMap" in v and not v["configMap"].get("optional") and not exists("ConfigMap", ns, v["configMap"]["name"]):
            problems.append(f"{where}: volume {v['name']}: ConfigMap {v['configMap']['name']!r} does not exist")
        if "secret" in v and not v["secret"].get("optional") and not exists("Secret", ns, v["secret"]["secretName"]):
            problems.append(f"{where}: volume {v['name']}: Secret {v['secret']['secretName']!r} does not exist")
        if "persistentVolumeClaim" in v and not exists("PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"]):
            problems.append(f"{where}: volume {v['name']}: claim {v['persistentVolumeClaim']['claimName']!r} does not exist")
    for group in ("initContainers", "containers"):
        for c in spec.get(group, []):
            at = f"{where} {c['name']}"
            for source in c.get("envFrom", []):
                for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if ref in source and not exists(kind, ns, source[ref]["name"]):
                        problems.append(f"{at}: envFrom {kind} {source[ref]['name']!r} does not exist")
            for var in c.get("env", []):
                for ref, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    target = var.get("valueFrom", {}).get(ref)
                    if target:
                        obj = objects.get((kind, ns, target["name"]))
                        keys = set((obj or {}).get("data", {})) | set((obj or {}).get("stringData", {}))
                        if obj is None or target["key"] not in keys:
                            problems.append(f"{at}: env {var['name']}: {kind} {target['name']}/{target['key']} does not exist")
            for mount in c.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{at}: mounts volume {mount['name']!r}, which the pod does not have")
                elif mount.get("subPath") and "configMap" in volumes[mount["name"]]:
                    cm = objects.get(("ConfigMap", ns, volumes[mount["name"]]["configMap"]["name"]))
                    if cm is not None and mount["subPath"] not in cm.get("data", {}):
                        problems.append(f"{at}: subPath {mount['subPath']!r} is no key of the ConfigMap")
            names = {p.get("name") for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in names:
                    problems.append(f"{at}: {probe} uses port {port!r}, which the container does not name")
    return problems


if __name__ == "__main__":
    sys.exit(main(sys.argv))
