"""The shipped cluster configs (cluster/): parsed and checked for what fsf relies on."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from fsf.results.study import check_study_url
from fsf.sweep.space import load_space, validate_space

ROOT = Path(__file__).parents[2]
CLUSTER = ROOT / "cluster"
KUBERAY = CLUSTER / "kuberay"
DRIVER_RESOURCE = "fsf_driver"
IMAGE_REPO = "/home/ray/fsf"  # where the Dockerfile and the cluster launcher put the checkout


def _ranges() -> dict[str, SpecifierSet]:
    """The torch and Ray ranges of pyproject.toml."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = {r.name: r.specifier for r in map(Requirement, deps)}
    return {"torch": reqs["torch"], "ray": reqs["ray"]}


def _render(path: Path, **values: str) -> str:
    """A manifest with the named variables filled in, as `envsubst '$REGISTRY ...'` does
    (other `$` text is left as it is)."""
    names = "|".join(values)
    return re.sub(
        rf"\$(?:\{{({names})\}}|({names})\b)",
        lambda m: values[m.group(1) or m.group(2)],
        path.read_text(),
    )


def _load(path: Path, **values: str) -> dict:
    data = yaml.safe_load(_render(path, **values) if values else path.read_text())
    assert isinstance(data, dict), path
    return data


def _fsf_sweep_args(entrypoint: str):  # type: ignore[no-untyped-def]
    """Parse an entrypoint with fsf-sweep's own parser; its space must be a shipped, valid one."""
    from fsf.cli.sweep import _parser

    argv = shlex.split(entrypoint)
    assert argv[0] == "fsf-sweep", entrypoint
    args = _parser().parse_args(argv[1:])
    assert args.command in (None, "run") and args.space, entrypoint
    assert args.space.startswith(IMAGE_REPO + "/"), args.space
    local = ROOT / os.path.relpath(args.space, IMAGE_REPO)
    return args, load_space(local)


# ---------------------------------------------------------------------- cluster launcher


def test_ray_cluster_yaml_follows_rays_schema():
    import jsonschema
    import ray.autoscaler

    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    jsonschema.validate(_load(CLUSTER / "ray-cluster.yaml"), json.loads(schema_path.read_text()))


def test_ray_cluster_yaml_has_driver_and_gpu_nodes_and_installs_fsf():
    cfg = _load(CLUSTER / "ray-cluster.yaml")
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "no trial should train on the head"
    drivers = [n for n, t in types.items() if t["resources"].get(DRIVER_RESOURCE, 0) > 0]
    assert cfg["head_node_type"] in drivers and len(drivers) >= 2
    for name in drivers:  # the nodes trial drivers land on are never spot instances
        assert "InstanceMarketOptions" not in types[name]["node_config"], name
    gpu = [
        n
        for n, t in types.items()
        if re.match(r"(g5|g6|p4|p5)\.", t["node_config"]["InstanceType"])
    ]
    assert gpu and all(DRIVER_RESOURCE not in types[n]["resources"] for n in gpu)
    assert any(types[n]["node_config"].get("InstanceMarketOptions") for n in gpu)
    # fsf comes from the synced checkout, on the image's Ray and torch: the image is the one
    # place naming a Ray version (a supported one), no command installs or pins Ray, a CUDA
    # torch inside fsf's range is installed only where the image has none
    image = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py311-gpu", cfg["docker"]["image"])
    assert image and _ranges()["ray"].contains(image.group(1)), cfg["docker"]["image"]
    mount = next(k for k, v in cfg["file_mounts"].items() if v == ".")
    setup = cfg["setup_commands"]
    text = " ".join(setup)
    assert "ray==" not in text and "ray[" not in text and "torch==" not in text
    torch_i = next(i for i, c in enumerate(setup) if "--index-url" in c)
    assert (
        re.search(r"/whl/cu\d+", setup[torch_i])
        and 'python -c "import torch" 2>/dev/null ||' in setup[torch_i]
    )
    torch_spec = re.search(r'"torch([^"]+)"', setup[torch_i]).group(1)
    assert SpecifierSet(torch_spec) == _ranges()["torch"]
    fsf_i = next(i for i, c in enumerate(setup) if "pip install" in c and mount in c)
    assert torch_i < fsf_i


def test_the_cluster_space_asks_for_the_driver_resource():
    spec = load_space(ROOT / "sweeps" / "xnli-cluster.yaml")
    res = spec.search.resources
    assert res.driver_resources == {DRIVER_RESOURCE: 1.0}
    assert res.workers > 1 and res.gpus >= 1


def test_trial_drivers_request_the_driver_resource():
    """What Ray is asked for: drivers of multi-worker trials get `driver_resources` (and no
    CPU, so they fit the head's 0 CPUs); single-worker trials and workers get `custom`."""
    from fsf.sweep._callbacks import _TrialResources

    spec = validate_space(
        {
            "search": {
                "parameters": {"resources.workers": {"type": "categorical", "values": [1, 2]}},
                "resources": {
                    "cpus": 2,
                    "gpus": 1,
                    "custom": {"accelerator_type:A10G": 0.001},
                    "driver_resources": {DRIVER_RESOURCE: 1},
                },
            }
        }
    )
    resources = _TrialResources(spec)
    assert resources({"resources.workers": 2}).bundles == [{DRIVER_RESOURCE: 1.0}]
    assert resources({"resources.workers": 1}).bundles == [
        {"CPU": 2.0, "GPU": 1.0, "accelerator_type:A10G": 0.001}
    ]
    plain = validate_space({"search": {"resources": {"workers": 2}}})
    assert _TrialResources(plain)({}).bundles == [{"CPU": 0.01}]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"custom": {"CPU": 2}}, "set `cpus`/`gpus`"),
        ({"custom": {"node_a": 0}}, "must be > 0"),
        ({"driver_resources": {"GPU": 1}}, "does not train"),
        ({"driver_resources": {" ": 1}}, "must not be empty"),
    ],
)
def test_bad_resources_are_reported(resources, message):
    from fsf.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        validate_space({"search": {"resources": resources}})
    assert err.value.problems[0].path.startswith("search.resources.")


# ---------------------------------------------------------------------- KubeRay


def _ray_start_resources(params: dict) -> dict:
    raw = params.get("resources", '"{}"')
    return json.loads(raw.strip('"').replace('\\"', '"'))


def _pods(cluster: dict) -> list[tuple[str, dict, dict]]:
    spec = cluster["spec"]
    groups = [("head", spec["headGroupSpec"])]
    groups += [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
    return [(name, g["rayStartParams"], g["template"]["spec"]) for name, g in groups]


def _cluster(ray: str = "2.55.1") -> dict:
    return _load(KUBERAY / "raycluster.yaml", REGISTRY="registry.example.com/me", RAY_VERSION=ray)


def test_raycluster_takes_the_ray_version_and_image_as_one_variable():
    text = (KUBERAY / "raycluster.yaml").read_text()
    assert set(re.findall(r"\$\{(\w+)\}", text)) == {"REGISTRY", "RAY_VERSION"}
    for ray in ("2.45.0", "2.60.0"):
        cluster = _cluster(ray)
        assert cluster["spec"]["rayVersion"] == ray
        images = {c["image"] for _, _, pod in _pods(cluster) for c in pod["containers"]}
        assert images == {f"registry.example.com/me/fsf:0.1.0-ray{ray}"}
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    default = re.search(r"^ARG RAY_VERSION=(\S+)$", dockerfile, re.M).group(1)
    assert _ranges()["ray"].contains(default)
    assert "FROM rayproject/ray:${RAY_VERSION}-py311-gpu" in dockerfile
    assert "-ray$RAY_VERSION" in dockerfile  # the tag raycluster.yaml names


def test_raycluster_manifest():
    cluster = _cluster()
    pvc = _load(KUBERAY / "storage.yaml")
    assert cluster["kind"] == "RayCluster" and cluster["apiVersion"] == "ray.io/v1"
    assert pvc["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in pvc["spec"]["accessModes"]
    pods = _pods(cluster)
    head = pods[0]
    assert head[1]["num-cpus"] == "0"
    drivers = [n for n, params, _ in pods if _ray_start_resources(params).get(DRIVER_RESOURCE)]
    assert "head" in drivers and len(drivers) >= 2
    gpu_groups = []
    for name, params, pod in pods:
        (container,) = pod["containers"]
        limits = container["resources"]["limits"]
        if "nvidia.com/gpu" in limits:
            assert int(limits["nvidia.com/gpu"]) >= 1
            assert DRIVER_RESOURCE not in _ray_start_resources(params)
            gpu_groups.append(name)
        # every pod mounts the shared sweep folder, from the claim storage.yaml creates
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert any(
            claims.get(v) == pvc["metadata"]["name"] and mounts[v] == "/mnt/sweeps" for v in mounts
        ), name
        assert container["image"] == head[2]["containers"][0]["image"]
    assert gpu_groups


@pytest.mark.parametrize("manifest", ["rayjob.yaml", "rayjob-s3.yaml"])
def test_rayjob_entrypoint_is_a_valid_fsf_sweep_run(manifest):
    job = _load(KUBERAY / manifest)
    cluster = _cluster()
    assert job["kind"] == "RayJob" and job["apiVersion"] == "ray.io/v1"
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    assert json.loads(job["spec"]["entrypointResources"]) == {DRIVER_RESOURCE: 1}
    args, spec = _fsf_sweep_args(job["spec"]["entrypoint"])
    env = yaml.safe_load(job["spec"].get("runtimeEnvYAML") or "{}").get("env_vars", {})
    if args.storage_path.startswith("s3://"):
        # the study cannot live in S3: it comes from the secret the pods load
        assert "FSF_OPTUNA_STORAGE" in (KUBERAY / manifest).read_text()
        pod = _pods(cluster)[0][2]["containers"][0]
        assert any("secretRef" in e for e in pod["envFrom"])
    else:
        assert args.storage_path.startswith("/mnt/sweeps")
        study = env["FSF_OPTUNA_STORAGE"]
        assert check_study_url(study) is None and study.startswith("journal:/mnt/sweeps/")
    if spec.search.resources.workers > 1:
        assert DRIVER_RESOURCE in spec.search.resources.driver_resources


def test_dockerfile_installs_fsf_on_the_images_ray_and_torch():
    text = (KUBERAY / "Dockerfile").read_text()
    assert "ray==" not in text and "torch==" not in text and f"-e {IMAGE_REPO}" in text
    assert 'python -c "import torch" 2>/dev/null ||' in text  # its own torch is kept
    torch_spec = re.search(r'"torch([^"]+)"', text).group(1)
    assert SpecifierSet(torch_spec) == _ranges()["torch"]
    assert "assert ray.__version__ == '${RAY_VERSION}'" in text  # the build fails if Ray moved


# ---------------------------------------------------------------------- security


def _start_commands(cfg: dict) -> dict[str, str]:
    return {kind: " ".join(cfg[f"{kind}_start_ray_commands"]) for kind in ("head", "worker")}


def test_ray_cluster_yaml_keeps_ray_closed():
    """Token auth on every node (the token shipped by file_mounts), the dashboard and job
    API on the head's loopback only (reached through `ray dashboard`, an SSH tunnel)."""
    cfg = _load(CLUSTER / "ray-cluster.yaml")
    commands = _start_commands(cfg)
    for kind, text in commands.items():
        assert "export RAY_AUTH_MODE=token;" in text, kind
        assert "0.0.0.0" not in text and "RAY_AUTH_MODE=disabled" not in text, kind
    (host,) = re.findall(r"--dashboard-host[= ](\S+)", commands["head"])
    assert host == "127.0.0.1"
    assert cfg["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"


def test_raycluster_manifest_keeps_ray_closed():
    """authOptions token mode, no container that turns auth off, a ClusterIP head Service, and
    a NetworkPolicy that admits only the namespace's pods and the operator."""
    cluster = _cluster()
    spec = cluster["spec"]
    assert spec["authOptions"] == {"mode": "token"}
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"
    for name, params, pod in _pods(cluster):
        for container in pod["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert env.get("RAY_AUTH_MODE") in (None, "token"), name
        # a dashboard host other than the pod's own interfaces would be an outside address
        assert params.get("dashboard-host", "0.0.0.0") in ("0.0.0.0", "127.0.0.1"), name
    policy = _load(KUBERAY / "networkpolicy.yaml")
    assert policy["kind"] == "NetworkPolicy"
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "ray.io/cluster": cluster["metadata"]["name"]
    }
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"], "an empty `from` admits everyone"
    for peer in rule["from"]:
        assert "ipBlock" not in peer, peer
        assert set(peer) <= {"podSelector", "namespaceSelector"}
        if "namespaceSelector" in peer:  # a named namespace, never every namespace
            assert peer["namespaceSelector"].get("matchLabels"), peer


def test_cluster_readme_says_how_to_reach_the_dashboard():
    text = (CLUSTER / "README.md").read_text()
    assert "kubectl port-forward svc/fsf-head-svc 8265:8265" in text
    assert "ray dashboard cluster/ray-cluster.yaml" in text and "SSH tunnel" in text
    assert "RAY_AUTH_MODE=token" in text and "## 9. Security" in text
    assert "unpickles nothing" in text  # a resume reads the study and the results only
