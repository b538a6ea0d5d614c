"""The repository layout that commands outside the pipeline assume: `promote`, `rollback`, `history`, `pr-report`.

Pipeline stages get every path on their command line from dvc.yaml. The human commands and tools have no stage
to tell them, so the few paths they need are written once, here; tests/meta/test_stage_contract.py checks
each against dvc.yaml.
"""

from __future__ import annotations

PARAMS_FILE = "params.yaml"
DVC_LOCK = "dvc.lock"
RECORD_DIR = "registry"  # registry/<channel>.json: what is promoted to each release channel (staging, prod)
PACKAGE_DIR = "models/package"
PACKAGE_POINTER = "reports/package.json"
GATE_FILE = "reports/gate.json"
SLICES_FILE = "reports/slices.json"
PLOTS_DIR = "reports/plots"
REPORTS_DIR = "reports"
# The service (flightdelay serve / deploy): not pipeline outputs, all git-ignored.
REQUEST_LOG = "logs/requests.jsonl"
DEPLOY_HISTORY = "logs/deploy/history.jsonl"
ALERTS_DIR = "reports/alerts"
VALIDATED_DIR = "data/validated"  # the service's default context source (the validate stage's partitions)
