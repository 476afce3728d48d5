"""The Dockerfile and the Helm chart name settings that exist and the command that runs.

No Docker daemon or helm binary is at hand in CI; these checks keep the two files from
drifting from the code they package."""

from __future__ import annotations

import re

import yaml

from router.settings import Settings
from tests.support import ROOT

SETTINGS = {f"FIRSTLINE_{name.upper()}" for name in Settings.model_fields}


def test_the_image_runs_serve_with_real_settings() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["firstline", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
    named = set(re.findall(r"\b(FIRSTLINE_[A-Z_]+)=", dockerfile))
    assert named and named <= SETTINGS
    assert "COPY examples/scope.yaml" in dockerfile and (ROOT / "examples/scope.yaml").exists()


def test_the_chart_passes_only_real_settings() -> None:
    values = yaml.safe_load((ROOT / "helm/firstline/values.yaml").read_text())
    assert set(values["env"]) <= SETTINGS
    deployment = (ROOT / "helm/firstline/templates/deployment.yaml").read_text()
    assert '"firstline", "serve"' in deployment
    assert "/healthz" in deployment and "/readyz" in deployment
    chart = yaml.safe_load((ROOT / "helm/firstline/Chart.yaml").read_text())
    assert chart["name"] == "firstline" and chart["apiVersion"] == "v2"
