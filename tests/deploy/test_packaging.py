"""Production packaging (deploy/Dockerfile, deploy/docker-compose.yml, deploy/k8s/) and the split
requirements. Containers cannot be built here, so this checks what can be checked without
Docker or a cluster: the files the Dockerfile copies exist and it installs the runtime
requirements only, the app serves with nothing but those installed, Compose names only services
it defines, every manifest validates against a current Kubernetes schema, and every variable
a deployment file sets is one the app reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings
from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.34"  # a current release; the manifests use only GA APIs
DEV_ONLY = {
    "locust", "gevent", "geventhttpclient", "flask", "pyzmq", "pytest", "pytest-django",
    "playwright", "matplotlib", "numpy", "ruff", "py-spy", "hypothesis", "schemathesis",
    "factory-boy", "faker", "kubernetes-validate",
}  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """name -> version of a requirements file's pins; asserts every other line is a comment or
    the include of the runtime file."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "-r requirements-runtime.txt":
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{path.name}: not pinned: {line}"
        assert canonical(name) not in found, f"{path.name}: {name} pinned twice"
        found[canonical(name)] = version
    return found


RUNTIME = pins(ROOT / "requirements-runtime.txt")
DEVELOPMENT = pins(ROOT / "requirements.txt")


def env_reads(env: dict[str, str]) -> set[str]:
    """The variable names the settings and gunicorn's config look up, loaded with ``env``."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("env_reads.py"))],
        input=json.dumps({"BOUNTYEXPO_ENV_FILE": os.devnull, **env}),
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


# --- Requirements ---------------------------------------------------------------------------


def test_requirements_are_split_and_each_package_is_pinned_once():
    assert "-r requirements-runtime.txt" in (ROOT / "requirements.txt").read_text().splitlines()
    assert not RUNTIME.keys() & DEVELOPMENT.keys()
    assert not RUNTIME.keys() & DEV_ONLY, "a development or load-test tool in the runtime requirements"
    assert DEVELOPMENT.keys() >= DEV_ONLY


def test_the_runtime_requirements_pin_everything_they_require_and_match_the_venv():
    environment = {**default_environment(), "extra": ""}
    for name, version in RUNTIME.items():
        installed = distribution(name)
        assert installed.version == version, f"{name}: pinned {version}, installed {installed.version}"
        for requirement in map(Requirement, installed.requires or []):
            if requirement.marker is None or requirement.marker.evaluate(environment):
                assert canonical(requirement.name) in RUNTIME, f"{name} needs {requirement.name}"


BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not in requirements-runtime.txt")
sys.meta_path.insert(0, Blocker())
import django
django.setup()
from django.core.management import call_command
from django.test import Client
from django.urls import get_resolver
from bountyexpo.wsgi import application
get_resolver().url_patterns  # imports every view
call_command("check")
client = Client()
print(client.get("/healthz").status_code, client.get("/api/bounties").status_code,
      client.get("/api/schema").status_code)
"""


@pytest.mark.django_db
def test_the_app_serves_with_only_the_runtime_requirements_importable():
    """Everything outside requirements-runtime.txt made unimportable: the app still starts,
    imports every view and admin module, passes its checks and serves."""
    runtime = set(RUNTIME)
    blocked = sorted(
        module
        for module, dists in packages_distributions().items()
        if not module.startswith("_") and not any(canonical(dist) in runtime for dist in dists)
        and module not in sys.stdlib_module_names
    )  # fmt: skip
    assert {"locust", "matplotlib", "pytest", "playwright"} <= set(blocked)
    env = subprocess_env(
        DJANGO_SETTINGS_MODULE="bountyexpo.settings",
        BOUNTYEXPO_ENV_FILE=os.devnull,
        SECRET_KEY="s" * 50,
        ALLOWED_HOSTS="testserver",
    )

    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(blocked)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-3:] == ["200", "200", "200"]


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_is_multi_stage_copies_what_exists_and_installs_runtime_requirements_only():
    instructions = dockerfile_instructions()
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert len(stages) >= 2
    final = instructions[stages[-1] :]

    for op, args in instructions:
        if op == "COPY" and "--from=" not in args:
            *sources, _destination = [word for word in args.split() if not word.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        if op == "RUN" and "pip install" in args:
            installed = [Path(path).name for path in re.findall(r"-r\s+(\S+)", args)]
            assert installed == ["requirements-runtime.txt"], args
    copied = [args for op, args in instructions if op == "COPY"]
    assert any("requirements-runtime.txt" in args for args in copied)
    assert not any(re.search(r"\brequirements\.txt\b", args) for args in copied)

    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(op == "CMD" and "gunicorn" in args and "bountyexpo.wsgi" in args for op, args in final)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".venv" in ignored and ".local" in ignored and ".git" in ignored


# --- Compose ----------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_names_only_services_it_defines_and_mounts_files_that_exist():
    services = compose()["services"]
    assert {"app1", "app2", "nginx", "postgres", "postgres-replica", "redis", "prometheus", "grafana"} <= set(
        services
    )
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert set(depends) <= set(services), f"{name} depends on a service compose does not define"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}: missing"
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    upstreams = re.findall(r"^\s*server (app\d+):8000 ", (DEPLOY / "nginx.conf").read_text(), re.M)
    assert upstreams == ["app1", "app2"] and set(upstreams) <= set(services)
    primary = " ".join(services["postgres"]["command"])
    assert "shared_preload_libraries=pg_stat_statements" in primary
    assert "pg_basebackup" in (DEPLOY / "compose" / "replica.sh").read_text()


def test_compose_sends_the_app_through_pgbouncer_and_the_monitor_and_migrations_around_it():
    services = compose()["services"]
    app, migrate, bouncer = (
        services["app1"]["environment"],
        services["migrate"]["environment"],
        services["pgbouncer"],
    )
    ini = (DEPLOY / "pgbouncer" / "pgbouncer.ini").read_text()

    assert "@pgbouncer:6432/" in app["DATABASE_URL"] and app["DATABASE_PGBOUNCER"] == "1"
    assert "@postgres:5432/" in app["DATABASE_DIRECT_URL"]
    assert "@postgres:5432/" in migrate["DATABASE_URL"]
    assert "./pgbouncer/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro" in bouncer["volumes"]
    assert (
        "apt-get install -y --no-install-recommends pgbouncer"
        in (DEPLOY / "pgbouncer" / "Dockerfile").read_text()
    )
    assert re.search(r"^pool_mode = transaction$", ini, re.M)
    assert re.search(r"^listen_port = 6432$", ini, re.M)
    # The server it forwards to is Compose's primary, and each server connection gets the
    # statement timeout the app would have sent (its default, as Compose does not set one).
    assert re.search(r"^\* = host=postgres port=5432 ", ini, re.M)
    timeout = int(re.search(r"SET statement_timeout = (\d+)", ini).group(1))
    assert "DATABASE_STATEMENT_TIMEOUT_MS" not in app
    assert timeout == settings.DATABASE_STATEMENT_TIMEOUT_MS


def test_compose_prometheus_scrapes_each_instance_and_its_config_passes_promtool(tmp_path):
    """promtool checks the config with the rule files where the container mounts them."""
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == ["app1:8000", "app2:8000"]
    mounts = dict(
        reversed(volume.split(":")[:2]) for volume in compose()["services"]["prometheus"]["volumes"]
    )
    for rule_file in config["rule_files"]:
        assert rule_file in mounts, f"{rule_file} is not mounted"
        shutil.copy(DEPLOY / mounts[rule_file], tmp_path / Path(rule_file).name)
    config["rule_files"] = [Path(rule_file).name for rule_file in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))

    result = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


# --- Kubernetes ---------------------------------------------------------------------------------


def manifests() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def test_every_manifest_validates_against_the_kubernetes_schema():
    assert len(manifests()) >= 9
    for name, doc in manifests():
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}: {exc.message} at {list(exc.path)}")


def test_the_kustomization_lists_every_manifest():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    files = [path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml"]
    assert sorted(listed) == sorted(files)


def by_kind(kind: str) -> list[dict]:
    return [doc for _name, doc in manifests() if doc["kind"] == kind]


def pod_specs() -> list[dict]:
    specs = [doc["spec"]["template"]["spec"] for doc in by_kind("Deployment") + by_kind("Job")]
    specs += [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] for doc in by_kind("CronJob")]
    return specs


def test_the_deployment_probes_scales_and_limits_as_the_guide_asks():
    (deployment,) = by_kind("Deployment")
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    (pdb,) = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    containers = [container for spec in pod_specs() for container in spec["containers"]]
    commands = [" ".join(container.get("command", [])) for container in containers]
    assert "python manage.py migrate --noinput" in commands
    assert "python manage.py perf_snapshot" in commands
    assert "python manage.py purge_idempotency_keys" in commands
    for spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
            sources = [item.get("configMapRef") or item.get("secretRef") for item in container["envFrom"]]
            assert [source["name"] for source in sources] == ["bountyexpo-api", "bountyexpo-api"]


def k8s_env() -> dict[str, str]:
    (config,) = by_kind("ConfigMap")
    (secret,) = by_kind("Secret")
    env = {**config["data"], **secret["stringData"]}
    for spec in pod_specs():
        for container in spec["containers"]:
            env.update({item["name"]: item["value"] for item in container.get("env", [])})
    return env


def test_every_variable_the_deployment_files_set_is_one_the_app_reads():
    app_env = compose()["services"]["app1"]["environment"]
    for source, env in {"deploy/k8s": k8s_env(), "deploy/docker-compose.yml": app_env}.items():
        env = {name: str(value) for name, value in env.items()}
        unread = set(env) - env_reads(env)
        assert not unread, f"{source} sets variables the app never reads: {sorted(unread)}"


def test_manage_py_check_deploy_passes_with_the_kubernetes_settings():
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "bountyexpo.settings",
        "BOUNTYEXPO_ENV_FILE": os.devnull,
        **k8s_env(),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
