"""check_k8s.py: checks a rendered kustomize overlay (one multi-document YAML file).

    check_k8s.py RENDERED.yaml KUBERNETES_VERSION [--expect KEY=VALUE]...

1. Every object of a built-in kind validates, strictly (unknown fields are errors), against the
   Kubernetes OpenAPI schemas of KUBERNETES_VERSION shipped by kubernetes-validate (pinned in
   requirements-k8s.txt).
2. Custom resources, which those schemas do not cover (KEDA's ScaledObject), are checked here field by
   field against what KEDA's keda.sh/v1alpha1 CRD requires and what the farm needs (a prometheus
   trigger on lf_queue_depth, a target that exists). Any other kind is an error.
3. The objects fit together: every ConfigMap, Secret and PVC a pod refers to is in the render (kustomize
   renames generated ones with a hash); selectors match their pod templates; PodDisruptionBudgets select
   a workload; every container has readiness and liveness probes; the workers' grace period covers a job.
4. --expect checks per overlay: gpu=1 (workers ask for one nvidia.com/gpu), redis=external|statefulset,
   curve=1 (every program has its CURVE settings), keda=1 (a ScaledObject exists), images=redis|dir|s3
   (where result images live: LF_IMAGE_STORE, and for dir a ReadWriteMany PVC mounted at that path in
   the brokers and gateways, for s3 a Secret with both keys in their envFrom).

Run by test_k8s.sh with the venv's python. Exit 0 = good; 1 = problems, each printed on one line.
"""
import sys

import kubernetes_validate
import yaml

CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}
WORKLOADS = ("Deployment", "StatefulSet")


def fail(errors, msg):
    errors.append(msg)


def name_of(doc):
    return "%s/%s" % (doc.get("kind"), doc.get("metadata", {}).get("name"))


def check_scaledobject(doc, by_kind, errors):
    where = name_of(doc)
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return fail(errors, where + ": no spec")
    allowed = {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
               "cooldownPeriod", "idleReplicaCount", "initialCooldownPeriod", "advanced",
               "triggers", "fallback"}
    for k in spec:
        if k not in allowed:
            fail(errors, "%s: spec.%s is not a ScaledObject field" % (where, k))
    ref = spec.get("scaleTargetRef") or {}
    if not isinstance(ref.get("name"), str):
        fail(errors, where + ": spec.scaleTargetRef.name (string) is required")
    elif ref.get("kind", "Deployment") not in by_kind or \
            ref["name"] not in by_kind[ref.get("kind", "Deployment")]:
        fail(errors, "%s: scaleTargetRef %s/%s is not in the render"
             % (where, ref.get("kind", "Deployment"), ref.get("name")))
    for k in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        if k in spec and (not isinstance(spec[k], int) or isinstance(spec[k], bool) or spec[k] < 0):
            fail(errors, "%s: spec.%s must be a non-negative integer" % (where, k))
    if isinstance(spec.get("minReplicaCount"), int) and isinstance(spec.get("maxReplicaCount"), int) \
            and spec["minReplicaCount"] > spec["maxReplicaCount"]:
        fail(errors, where + ": minReplicaCount > maxReplicaCount")
    hpa = (spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig")
    if hpa is not None:
        # The behavior block is an autoscaling/v2 HPA's: validate it with that schema.
        probe = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                 "metadata": {"name": "probe"},
                 "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 1,
                          "behavior": hpa.get("behavior", {})}}
        try:
            kubernetes_validate.validate(probe, VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(errors, "%s: advanced.horizontalPodAutoscalerConfig.behavior: %s" % (where, e.message))
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        return fail(errors, where + ": spec.triggers (a non-empty list) is required")
    for i, t in enumerate(triggers):
        if not isinstance(t, dict) or not isinstance(t.get("type"), str):
            fail(errors, "%s: triggers[%d].type (string) is required" % (where, i))
            continue
        md = t.get("metadata")
        if not isinstance(md, dict) or any(not isinstance(v, str) for v in md.values()):
            fail(errors, "%s: triggers[%d].metadata must map names to strings" % (where, i))
            continue
        if t["type"] == "prometheus":
            for k in ("serverAddress", "query", "threshold"):
                if not md.get(k):
                    fail(errors, "%s: prometheus trigger needs metadata.%s" % (where, k))
            try:
                if float(md.get("threshold", "x")) <= 0:
                    raise ValueError
            except ValueError:
                fail(errors, "%s: threshold must be a positive number in a string" % where)
            if "lf_queue_depth" not in md.get("query", ""):
                fail(errors, "%s: the query does not read lf_queue_depth" % where)


def pod_spec(doc):
    return doc.get("spec", {}).get("template", {}).get("spec", {})


def check_refs(docs, by_kind, errors):
    for doc in docs:
        if doc.get("kind") not in WORKLOADS:
            continue
        where = name_of(doc)
        spec = doc["spec"]
        sel = spec.get("selector", {}).get("matchLabels", {})
        labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            fail(errors, "%s: selector %s does not match the pod labels %s" % (where, sel, labels))
        ps = pod_spec(doc)
        for v in ps.get("volumes", []):
            if "secret" in v and v["secret"]["secretName"] not in by_kind.get("Secret", {}):
                fail(errors, "%s: volume %s names Secret %s, not in the render"
                     % (where, v["name"], v["secret"]["secretName"]))
            if "configMap" in v and v["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                fail(errors, "%s: volume %s names a missing ConfigMap" % (where, v["name"]))
            pvc = v.get("persistentVolumeClaim")
            if pvc and pvc["claimName"] not in by_kind.get("PersistentVolumeClaim", {}):
                fail(errors, "%s: volume %s names PVC %s, not in the render"
                     % (where, v["name"], pvc["claimName"]))
        for c in ps.get("containers", []):
            cw = "%s container %s" % (where, c["name"])
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef") or ef.get("secretRef")
                kind = "ConfigMap" if "configMapRef" in ef else "Secret"
                if ref["name"] not in by_kind.get(kind, {}):
                    fail(errors, "%s: envFrom %s %s is not in the render" % (cw, kind, ref["name"]))
            for e in c.get("env", []):
                src = e.get("valueFrom", {})
                for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    if key in src:
                        obj = by_kind.get(kind, {}).get(src[key]["name"])
                        if obj is None:
                            fail(errors, "%s: env %s names %s %s, not in the render"
                                 % (cw, e["name"], kind, src[key]["name"]))
                        elif src[key]["key"] not in obj.get("data", {}):
                            fail(errors, "%s: env %s: %s %s has no key %s"
                                 % (cw, e["name"], kind, src[key]["name"], src[key]["key"]))
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    fail(errors, "%s: no %s" % (cw, probe))
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            declared = {v["name"] for v in ps.get("volumes", [])}
            if doc["kind"] == "StatefulSet":
                declared |= {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
            for m in mounts - declared:
                fail(errors, "%s: mounts volume %s, which the pod does not declare" % (cw, m))
    workers = by_kind.get("Deployment", {}).get("worker")
    if workers is not None and "LF_WORKER_PRELOAD" not in env_of(workers, "worker"):
        fail(errors, "Deployment/worker: no LF_WORKER_PRELOAD, so readiness does not mean a resident model")
    if workers is None:
        fail(errors, "no Deployment/worker")
    elif pod_spec(workers).get("terminationGracePeriodSeconds", 30) < 600:
        fail(errors, "Deployment/worker: terminationGracePeriodSeconds under 600 s cannot cover a job")
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        sel = pdb["spec"]["selector"]["matchLabels"]
        hit = any(all(pod_labels(d).get(k) == v for k, v in sel.items())
                  for kind in WORKLOADS for d in by_kind.get(kind, {}).values())
        if not hit:
            fail(errors, "%s selects no workload" % name_of(pdb))


def pod_labels(doc):
    return doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})


def env_of(doc, container):
    for c in pod_spec(doc).get("containers", []):
        if c["name"] == container:
            return {e["name"]: e for e in c.get("env", [])}
    return {}


def check_expect(by_kind, expect, errors):
    deps, sts = by_kind.get("Deployment", {}), by_kind.get("StatefulSet", {})
    cm = next(iter(by_kind.get("ConfigMap", {}).values()), {}).get("data", {})
    if expect.get("gpu") == "1":
        c = pod_spec(deps["worker"])["containers"][0]
        if c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu") != 1:
            fail(errors, "gpu: the worker does not ask for exactly one nvidia.com/gpu")
        if env_of(deps["worker"], "worker").get("LF_WORKER_DEVICE", {}).get("value") != "cuda":
            fail(errors, "gpu: the worker's LF_WORKER_DEVICE is not cuda")
    if expect.get("redis") == "external":
        if "redis" in sts or "redis" in by_kind.get("Service", {}):
            fail(errors, "external redis: the Redis StatefulSet/Service is still rendered")
        if cm.get("LF_REDIS_HOST") in (None, "redis"):
            fail(errors, "external redis: LF_REDIS_HOST still points at the in-cluster redis")
    if expect.get("redis") == "statefulset":
        r = sts.get("redis")
        if not r:
            fail(errors, "no StatefulSet/redis")
        else:
            args = pod_spec(r)["containers"][0].get("args", [])
            if "--appendonly" not in args or args[args.index("--appendonly") + 1] != "yes":
                fail(errors, "redis: AOF is not on")
            if not r["spec"].get("volumeClaimTemplates"):
                fail(errors, "redis: no PVC for its AOF")
    if expect.get("curve") == "1":
        for kind, name in (("StatefulSet", "broker"), ("Deployment", "gateway"), ("Deployment", "worker")):
            env = env_of(by_kind[kind][name], name)
            if "LF_CURVE_CERT" not in env:
                fail(errors, "curve: %s/%s has no LF_CURVE_CERT" % (kind, name))
        if "LF_API_KEYS" not in env_of(deps["gateway"], "gateway"):
            fail(errors, "the gateway gets no LF_API_KEYS")
    if expect.get("keda") == "1" and not by_kind.get("ScaledObject"):
        fail(errors, "no KEDA ScaledObject")
    if expect.get("keda") == "0" and by_kind.get("ScaledObject"):
        fail(errors, "a ScaledObject where none was expected")
    images = expect.get("images")
    store = cm.get("LF_IMAGE_STORE", "redis")
    users = [(k, n, by_kind.get(k, {}).get(n)) for k, n in (("StatefulSet", "broker"), ("Deployment", "gateway"))]
    if images == "redis" and store != "redis":
        fail(errors, "images: LF_IMAGE_STORE is %s, expected redis" % store)
    if images == "dir":
        path = store[4:] if store.startswith("dir:") else None
        if not path:
            fail(errors, "images: LF_IMAGE_STORE is %s, expected dir:/path" % store)
        for kind, name, d in users:
            if d is None:
                continue
            c = next(c for c in pod_spec(d)["containers"] if c["name"] == name)
            vols = {v["name"]: v for v in pod_spec(d).get("volumes", [])}
            m = [m for m in c.get("volumeMounts", []) if m["mountPath"] == path]
            claim = m and vols.get(m[0]["name"], {}).get("persistentVolumeClaim", {}).get("claimName")
            pvc = by_kind.get("PersistentVolumeClaim", {}).get(claim) if claim else None
            if not pvc:
                fail(errors, "images: %s/%s does not mount a PVC at %s" % (kind, name, path))
            elif "ReadWriteMany" not in pvc["spec"].get("accessModes", []):
                fail(errors, "images: PVC %s is not ReadWriteMany (brokers and gateways share it)" % claim)
    if images == "s3":
        if not store.startswith("s3://"):
            fail(errors, "images: LF_IMAGE_STORE is %s, expected s3://bucket/prefix" % store)
        for kind, name, d in users:
            if d is None:
                continue
            c = next(c for c in pod_spec(d)["containers"] if c["name"] == name)
            keys = set()
            for ef in c.get("envFrom", []):
                if "secretRef" in ef:
                    keys |= set(by_kind.get("Secret", {}).get(ef["secretRef"]["name"], {}).get("data", {}))
            for k in ("LF_S3_ACCESS_KEY_ID", "LF_S3_SECRET_ACCESS_KEY"):
                if k not in keys:
                    fail(errors, "images: %s/%s gets no %s from a Secret" % (kind, name, k))
    brokers = sts.get("broker")
    if brokers:
        n = brokers["spec"].get("replicas", 1)
        svc = by_kind.get("Service", {}).get(brokers["spec"]["serviceName"], {})
        if svc.get("spec", {}).get("clusterIP") != "None":
            fail(errors, "the brokers' Service is not headless: clients could not reach each broker")
        for var in ("LF_BROKER_FRONTEND", "LF_BROKER_BACKEND", "LF_BROKER_EVENTS"):
            names = [e.split("//")[1].split(".")[0] for e in cm.get(var, "").split(",") if e]
            want = ["%s-%d" % (brokers["metadata"]["name"], i) for i in range(n)]
            if names != want:
                fail(errors, "%s lists %s, the StatefulSet has %s" % (var, names, want))


def main(argv):
    global VERSION
    path, VERSION = argv[1], argv[2]
    expect = dict(a.split("=", 1) for a in argv[4::2]) if len(argv) > 3 else {}
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    errors = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), {})[d.get("metadata", {}).get("name")] = d
    n_schema = 0
    for d in docs:
        if (d.get("apiVersion"), d.get("kind")) in CUSTOM_KINDS:
            check_scaledobject(d, by_kind, errors)
            continue
        try:
            kubernetes_validate.validate(d, VERSION, strict=True)
            n_schema += 1
        except kubernetes_validate.SchemaNotFoundError:
            fail(errors, "%s: no schema for %s in Kubernetes %s and no check here"
                 % (name_of(d), d.get("apiVersion"), VERSION))
        except kubernetes_validate.ValidationError as e:
            loc = ".".join(str(p) for p in e.path)
            fail(errors, "%s: %s (at %s)" % (name_of(d), e.message, loc or "top"))
    check_refs(docs, by_kind, errors)
    check_expect(by_kind, expect, errors)
    for e in errors:
        print("  " + e)
    print("%s: %d objects, %d validated against the Kubernetes %s schemas, %d custom checked, %s"
          % (path, len(docs), n_schema, VERSION, len(by_kind.get("ScaledObject", {})),
             "%d problem(s)" % len(errors) if errors else "ok"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
