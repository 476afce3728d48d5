"""The Helm chart, rendered by a real helm (tests/helm.py) and read back as the manifests
Kubernetes gets: probes, non-root and read-only pods, secrets only by reference, the
migration hook, disruption budgets, SQLite's single replica, the scope note's checksum,
the optional features and the install notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli.main import _parser
from router.scope.load import parse_scope
from tests.helm import (
    SECRET_SETTINGS,
    SETTINGS,
    VARIANTS,
    ci_values,
    container,
    env_of,
    kinds,
    notes,
    only,
    pod_specs,
    render,
)
from tests.support import EXAMPLE_SCOPE


def test_defaults_run_two_serve_replicas_on_postgresql() -> None:
    objects = render("defaults")
    assert kinds(objects) == ["ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Secret",
                              "Secret", "Service"]
    web = only(objects, "Deployment", "rel-firstline")
    assert web["spec"]["replicas"] == 2
    assert web["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    main = web["spec"]["template"]["spec"]["containers"][0]
    assert main["args"] == ["firstline", "serve", "--host", "0.0.0.0", "--port", "8000"]
    database = env_of(main)["FIRSTLINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert database == {"name": "rel-firstline", "key": "FIRSTLINE_DATABASE_URL",
                        "optional": False}
    assert env_of(main)["FIRSTLINE_RULES"]["value"] == "/etc/firstline/scope.yaml"


@pytest.mark.parametrize("values", VARIANTS)
def test_every_pod_is_non_root_with_a_read_only_root(values: str) -> None:
    for name, spec in pod_specs(render(values)).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], name
        for box in spec["containers"]:
            context = box["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            mounts = {m["mountPath"]: m["name"] for m in box["volumeMounts"]}
            assert mounts["/tmp"] == "tmp", name  # temporary files: the root is read-only
            assert box["resources"]["limits"]["memory"], name


@pytest.mark.parametrize("values", VARIANTS)
def test_serve_pods_probe_health_and_readiness(values: str) -> None:
    objects = render(values)
    main = container(objects, "rel-firstline")
    assert main["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


@pytest.mark.parametrize("values", VARIANTS)
def test_every_container_runs_a_command_the_cli_accepts(values: str) -> None:
    for name, spec in pod_specs(render(values)).items():
        for box in spec["containers"]:
            assert box["args"][0] == "firstline", name
            _parser().parse_args(box["args"][1:])  # exits (fails the test) on a bad flag


@pytest.mark.parametrize("values", VARIANTS)
def test_secrets_reach_pods_only_as_secret_references(values: str) -> None:
    objects = render(values)
    secret_values = [v for v in ci_values(values).get("secrets", {}).values() if v]
    for name, spec in pod_specs(objects).items():
        for box in spec["containers"]:
            for variable in box["env"]:
                assert variable["name"] in SETTINGS, f"{name}: {variable['name']} is no setting"
                if "value" in variable:
                    assert variable["name"] not in SECRET_SETTINGS or (
                        values == "sqlite" and variable["value"] == "sqlite:////data/firstline.db")
                    assert not any(s in variable["value"] for s in secret_values), name
                else:
                    assert set(variable["valueFrom"]) == {"secretKeyRef"}, name
            assert "envFrom" not in box, name


def test_every_secret_setting_is_wired_when_set() -> None:
    """All-on sets every secret: the chart's Secret holds each, and each pod refers to each."""
    objects = render("all-on")
    assert set(ci_values("all-on")["secrets"]) == SECRET_SETTINGS  # the CI file is complete
    chart_secret = only(objects, "Secret", "rel-firstline")
    assert set(chart_secret["data"]) == SECRET_SETTINGS
    for name in ("rel-firstline", "rel-firstline-worker"):
        refs = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container(objects, name)["env"]
                if "valueFrom" in v}
        assert set(refs) == SECRET_SETTINGS, name
        assert all(r["name"] == "rel-firstline" and r["key"] == k for k, r in refs.items())


def test_an_existing_secret_and_config_map_are_used_as_named() -> None:
    objects = render(sets=("existingSecret=team-firstline", "existingConfigMap=team-scope"))
    assert "Secret" not in kinds(objects) and "ConfigMap" not in kinds(objects)
    main = container(objects, "rel-firstline")
    refs = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in main["env"] if "valueFrom" in v}
    assert set(refs) == SECRET_SETTINGS
    assert {r["name"] for r in refs.values()} == {"team-firstline"}
    assert [k for k, r in refs.items() if not r["optional"]] == ["FIRSTLINE_DATABASE_URL"]
    volumes = only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "scope", "configMap": {"name": "team-scope"}} in volumes
    job = only(objects, "Job")["spec"]["template"]["spec"]["containers"][0]
    assert job["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "team-firstline"


def test_migrations_run_in_a_pre_install_pre_upgrade_hook() -> None:
    objects = render("defaults")
    job = only(objects, "Job", "rel-firstline-migrate")
    notes = job["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
    box = job["spec"]["template"]["spec"]["containers"][0]
    assert box["args"] == ["firstline", "db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    ref = box["env"][0]["valueFrom"]["secretKeyRef"]
    assert [v["name"] for v in box["env"]] == ["FIRSTLINE_DATABASE_URL"]
    # Hooks run before the release's Secret exists: the Job reads a hook Secret made first.
    secret = only(objects, "Secret", ref["name"])
    hook = secret["metadata"]["annotations"]
    assert hook["helm.sh/hook"] == notes["helm.sh/hook"]
    assert int(hook["helm.sh/hook-weight"]) < int(notes["helm.sh/hook-weight"])
    assert "FIRSTLINE_DATABASE_URL" in secret["data"]


def test_pod_disruption_budgets_cover_each_deployment() -> None:
    for values, names in (("defaults", ["rel-firstline"]),
                          ("all-on", ["rel-firstline", "rel-firstline-worker"]),
                          ("sqlite", ["rel-firstline"])):
        objects = render(values)
        budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
        assert sorted(b["metadata"]["name"] for b in budgets) == names, values
        for budget in budgets:
            assert budget["apiVersion"] == "policy/v1"
            assert budget["spec"]["maxUnavailable"] == 1
            deployment = only(objects, "Deployment", budget["metadata"]["name"])
            assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_sqlite_runs_one_replica_on_a_volume() -> None:
    objects = render("sqlite")
    assert "Job" not in kinds(objects)  # serve migrates SQLite itself; the claim is not there yet
    web = only(objects, "Deployment")
    assert web["spec"]["replicas"] == 1 and web["spec"]["strategy"] == {"type": "Recreate"}
    main = web["spec"]["template"]["spec"]["containers"][0]
    assert env_of(main)["FIRSTLINE_DATABASE_URL"]["value"] == "sqlite:////data/firstline.db"
    assert {"name": "data", "mountPath": "/data"} in main["volumeMounts"]
    claim = only(objects, "PersistentVolumeClaim")
    volumes = web["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}
            } in volumes
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_default_scope_note_is_the_example_in_shadow_mode() -> None:
    note = only(render("defaults"), "ConfigMap")["data"]["scope.yaml"]
    assert note == EXAMPLE_SCOPE.read_text()
    scope, _warnings = parse_scope(note.encode(), "configmap scope.yaml")
    assert scope.mode == "shadow"


def test_a_scope_note_change_rolls_the_pods(tmp_path: Path) -> None:
    def checksums(*sets: str) -> set[str]:
        objects = render("all-on", sets=sets)
        return {o["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                for o in objects if o["kind"] == "Deployment"}

    enforce = tmp_path / "scope.yaml"
    enforce.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", "mode: enforce"))
    same = tmp_path / "same.yaml"
    same.write_text(EXAMPLE_SCOPE.read_text())
    before, after = checksums(), checksums(f"scopeNote={enforce}")
    assert len(before) == 1 and len(after) == 1  # web and worker roll together
    assert before != after
    assert checksums(f"scopeNote={same}") == before
    assert checksums("replicaCount=3") == before  # only the note moves it


def test_the_worker_split_and_optional_features() -> None:
    objects = render("all-on")
    web = only(objects, "Deployment", "rel-firstline")
    assert "replicas" not in web["spec"]  # the autoscaler owns it
    assert container(objects, "rel-firstline")["args"][-1] == "--no-worker"
    worker = only(objects, "Deployment", "rel-firstline-worker")
    assert worker["spec"]["replicas"] == 3
    assert container(objects, "rel-firstline-worker")["args"] == ["firstline", "worker"]
    assert worker["spec"]["selector"] != web["spec"]["selector"]
    service = only(objects, "Service")
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    hpa = only(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "rel-firstline"}
    monitor = only(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    ingress = only(objects, "Ingress")
    assert ingress["spec"]["tls"] == [{"secretName": "firstline-tls",
                                       "hosts": ["firstline.example.com"]}]
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/webhooks"
    assert path["backend"]["service"] == {"name": "rel-firstline", "port": {"name": "http"}}


def test_notes_print_the_webhook_urls_and_the_checks(tmp_path: Path) -> None:
    text = notes(tmp_path, "all-on")
    for tracker in ("jira", "linear", "github", "pagerduty"):
        assert f"https://firstline.example.com/webhooks/{tracker}\n" in text
    assert "exec deploy/rel-firstline -- firstline check /etc/firstline/scope.yaml" in text
    assert "exec deploy/rel-firstline -- firstline scope /etc/firstline/scope.yaml" in text
    assert "curl -s http://127.0.0.1:8000/readyz" in text
    assert "shadow mode" in text
    assert "is empty" not in text  # every webhook secret is set


def test_notes_say_which_tracker_has_no_secret(tmp_path: Path) -> None:
    text = notes(tmp_path, "sqlite")
    assert "https://<your public host>/webhooks/jira" in text
    assert "secrets.FIRSTLINE_JIRA_WEBHOOK_SECRET is empty" in text
    assert "FIRSTLINE_GITHUB_WEBHOOK_SECRET is empty" not in text
