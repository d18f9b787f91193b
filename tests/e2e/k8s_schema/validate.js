// Validates Kubernetes manifests against the Kubernetes OpenAPI schemas that the npm package
// kubernetes-models carries (installed by scripts/install-deps.sh with `npm ci` here).
//
//   node validate.js FILE.json ...     each file: a JSON array of manifests (deploy_files_test.py
//                                      converts the YAML) or a single manifest
//
// Kinds it knows (Deployment, Service, HPA, PDB, ConfigMap) are checked in full; a
// ServingRuntime's containers are checked as core/v1 Containers. Prints "ok KIND NAME" or
// "invalid KIND NAME: reason" per manifest and exits 1 if any is invalid or of an unknown kind.
"use strict";
const fs = require("fs");
const { Deployment } = require("kubernetes-models/apps/v1/Deployment");
const { Service } = require("kubernetes-models/v1/Service");
const { ConfigMap } = require("kubernetes-models/v1/ConfigMap");
const { Container } = require("kubernetes-models/v1/Container");
const { HorizontalPodAutoscaler } = require("kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler");
const { PodDisruptionBudget } = require("kubernetes-models/policy/v1/PodDisruptionBudget");

const models = {
  "apps/v1 Deployment": Deployment,
  "v1 Service": Service,
  "v1 ConfigMap": ConfigMap,
  "autoscaling/v2 HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1 PodDisruptionBudget": PodDisruptionBudget,
};

let failed = false;
function report(manifest, error) {
  const name = (manifest.metadata || {}).name || "?";
  if (error) {
    failed = true;
    console.log(`invalid ${manifest.kind} ${name}: ${error.message || error}`);
  } else {
    console.log(`ok ${manifest.kind} ${name}`);
  }
}

function check(manifest) {
  const key = `${manifest.apiVersion} ${manifest.kind}`;
  try {
    if (models[key]) {
      new models[key](manifest).validate();
    } else if (key === "serving.kserve.io/v1alpha1 ServingRuntime") {
      for (const c of manifest.spec.containers) new Container(c).validate();
    } else {
      throw new Error(`no schema for ${key}`);
    }
    report(manifest, null);
  } catch (e) {
    report(manifest, e);
  }
}

for (const file of process.argv.slice(2)) {
  const parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  for (const manifest of Array.isArray(parsed) ? parsed : [parsed]) check(manifest);
}
process.exit(failed ? 1 : 0);
