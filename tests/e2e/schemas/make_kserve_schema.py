#!/usr/bin/python3
"""Writes servingruntime.schema.json, the openAPIV3Schema of KServe's ServingRuntime CRD with the
fields coalesce's manifest does not use (affinity, volumes, workerSpec, ...) reduced to their
type, so the committed file stays small. Run by hand against a KServe checkout:

  tests/e2e/schemas/make_kserve_schema.py KSERVE/config/crd/full/serving.kserve.io_servingruntimes.yaml

The committed copy was made from kserve/kserve at aaac4e294dae2c7b1aa1886447793f3aa1c30912
(2026-08-21); KServe is Apache-2.0 licensed."""
import json, os, sys
import yaml

crd = yaml.safe_load(open(sys.argv[1]))
version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
schema = version["schema"]["openAPIV3Schema"]
spec = schema["properties"]["spec"]
for name in ("affinity", "volumes", "workerSpec", "tolerations", "resourceClaims",
             "imagePullSecrets", "builtInAdapter"):
    spec["properties"][name] = {"type": spec["properties"][name]["type"]}
schema["$comment"] = ("KServe ServingRuntime v1alpha1 openAPIV3Schema (kserve/kserve, Apache-2.0), "
                      "reduced by make_kserve_schema.py")
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "servingruntime.schema.json")
with open(out, "w") as f:
    json.dump(schema, f, indent=1, sort_keys=True)
    f.write("\n")
print(out, os.path.getsize(out), "bytes")
