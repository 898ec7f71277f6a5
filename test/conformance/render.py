"""Renders conformance cases through Prefect's own code, for comparison with pushpool's renderer.

Test-only. Run with the Python of a venv that has prefect and prefect-gcp installed:

    <venv>/bin/python test/conformance/render.py [--only validation|render] < cases.json > results.json
    <venv>/bin/python test/conformance/render.py --default-templates
    <venv>/bin/python test/conformance/render.py --transliteration
    <venv>/bin/python test/conformance/render.py --patterns < patterns.json > verdicts.json
    <venv>/bin/python test/conformance/render.py --formats < formats.json > verdicts.json
    <venv>/bin/python test/conformance/render.py --idna-data > src/jobconfig/idna-data.json
    <venv>/bin/python test/conformance/render.py --bundle-commands < bundles.json > commands.json

Input: {"cases": [case, ...]}, each case holding plain API-shaped JSON (snake_case): "pool_type",
"work_pool", "deployment", "flow_run", "flow", "blocks" ([{id, block_type_slug, name, data}]),
"variables" ({name: value}), "base_environment", "worker_name", "worker_id".

The server half (validation, --formats, --patterns, --idna-data) imports only Prefect's server
code, so it can run against an older Prefect server than the worker half (scripts/compat.ts).

Every piece of logic under test is Prefect's: the server's job-variable validation
(prefect.server.api.validation._validate_work_pool_job_variables) and the worker's
`resolve_for_flow_run` (variable merge, from_template_and_values, prepare_for_flow_run). Only the
I/O points are replaced with the case's data:
  - the Prefect client (read_flow, read_deployment, read_block_document[_by_name],
    read_variable_by_name) and the server's block-document read used for `$ref` defaults;
  - BaseJobConfiguration._base_environment (the worker process's own Prefect settings);
  - GcpCredentials.block_initialization (Application Default Credentials discovery and key parsing);
  - os.environ, from which every variable a `{{ $NAME }}` placeholder names is removed: pushpool
    always renders such placeholders as "", which is what Prefect does when the variable is unset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import types
from importlib import import_module
from typing import Any
from unittest import mock

os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")

import prefect  # noqa: E402
import prefect.exceptions  # noqa: E402


def workers() -> dict[str, Any]:
    """The Cloud Run workers, imported only by the worker half: the server half may run in a venv
    holding an older Prefect server and no prefect-gcp (scripts/compat.ts)."""
    from prefect_gcp.workers.cloud_run import CloudRunWorker
    from prefect_gcp.workers.cloud_run_v2 import CloudRunWorkerV2

    return {"cloud-run-v2": CloudRunWorkerV2, "cloud-run": CloudRunWorker}

ENV_PLACEHOLDER = re.compile(r"{{\s*\$([\w\.\-\[\]$]+)\s*}}")


class CaseClient:
    """The Prefect client methods the worker calls, answered from the case."""

    def __init__(self, case: dict[str, Any]):
        self.case = case
        self.blocks = case.get("blocks") or []

    def _not_found(self, what: str) -> prefect.exceptions.ObjectNotFound:
        return prefect.exceptions.ObjectNotFound(http_exc=Exception(f"404 {what}"), help_message=f"{what} not found")

    async def read_flow(self, flow_id):
        from prefect.client.schemas.objects import Flow

        flow = self.case.get("flow")
        return Flow.model_validate(flow) if flow is not None else None

    async def read_deployment(self, deployment_id):
        raise self._not_found(f"deployment {deployment_id}")

    async def read_block_document(self, block_document_id, include_secrets: bool = True):
        for block in self.blocks:
            if block["id"] == str(block_document_id):
                return types.SimpleNamespace(data=block["data"])
        raise self._not_found(f"block document {block_document_id}")

    async def read_block_document_by_name(self, name, block_type_slug, include_secrets: bool = True):
        for block in self.blocks:
            if block["name"] == name and block["block_type_slug"] == block_type_slug:
                return types.SimpleNamespace(data=block["data"])
        raise self._not_found(f"block {block_type_slug}/{name}")

    async def read_variable_by_name(self, name):
        variables = self.case.get("variables") or {}
        return types.SimpleNamespace(value=variables[name]) if name in variables else None


class WarningCollector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def reveal(value: Any) -> Any:
    if hasattr(value, "get_secret_value"):
        return reveal(value.get_secret_value())
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def credentials_data(credentials) -> dict[str, Any] | None:
    """The fields a credentials block was given; a model built from no data means ADC."""
    if credentials is None or not credentials.model_fields_set:
        return None
    return {field: reveal(getattr(credentials, field)) for field in credentials.model_fields_set}


async def validate(case: dict[str, Any]) -> dict[str, Any]:
    from prefect.server import models
    from prefect.server.api import validation
    from prefect.utilities.schema_tools.validation import ValidationError

    blocks = {block["id"]: block for block in case.get("blocks") or []}

    async def read_block_document_by_id(session, block_document_id):
        block = blocks.get(str(block_document_id))
        return types.SimpleNamespace(data=block["data"]) if block else None

    work_pool = case["work_pool"]
    deployment = case.get("deployment") or {}
    with mock.patch.object(models.block_documents, "read_block_document_by_id", read_block_document_by_id):
        try:
            await validation._validate_work_pool_job_variables(
                None,
                work_pool["name"],
                work_pool["base_job_template"],
                deployment.get("job_variables") or {},
                case["flow_run"].get("job_variables") or {},
                ignore_required=False,
                ignore_invalid_defaults=True,
            )
        except ValidationError as exc:
            cause = exc.__cause__
            path = getattr(cause, "json_path", "$")
            if getattr(cause, "validator", None) == "required":
                path = "$." + cause.message.partition(" ")[0].strip("'")
            return {"ok": False, "path": path.removeprefix("$").removeprefix("."), "message": str(exc)}
        except Exception as exc:  # HTTPException for a missing block default or an invalid schema
            return {"ok": False, "path": None, "message": f"{type(exc).__name__}: {getattr(exc, 'detail', exc)}"}
    return {"ok": True}


async def render(case: dict[str, Any]) -> dict[str, Any]:
    from prefect.client.schemas.objects import FlowRun, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.workers.base import BaseJobConfiguration
    from prefect_gcp.credentials import GcpCredentials

    worker = workers()[case["pool_type"]]
    configuration_class = worker.job_configuration
    flow_run = FlowRun.model_validate(case["flow_run"])
    deployment = DeploymentResponse.model_validate(case["deployment"]) if case.get("deployment") else None
    work_pool = WorkPool.model_validate(case["work_pool"])
    base_environment = dict(case.get("base_environment") or {})

    collector = WarningCollector()
    logger = logging.getLogger("prefect.flow_runs")
    logger.addHandler(collector)
    try:
        with mock.patch.object(BaseJobConfiguration, "_base_environment", classmethod(lambda cls: dict(base_environment))), \
                mock.patch.object(GcpCredentials, "block_initialization", lambda self: None):
            configuration = await configuration_class.resolve_for_flow_run(
                flow_run,
                client=CaseClient(case),
                work_pool=work_pool,
                worker_name=case["worker_name"],
                worker_id=case.get("worker_id"),
                deployment=deployment,
            )
            job_name = configuration.job_name if case["pool_type"] == "cloud-run-v2" else configuration.job_body.get("metadata", {}).get("name")
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        logger.removeHandler(collector)

    return {
        "ok": True,
        "job_body": configuration.job_body,
        "job_name": job_name,
        "name": configuration.name,
        "region": configuration.region,
        "keep_job": configuration.keep_job,
        "timeout": configuration.timeout,
        "env": configuration.env,
        "labels": configuration.labels,
        "credentials": credentials_data(configuration.credentials),
        "warnings": collector.messages,
    }


def transliteration() -> dict[str, Any]:
    """What python-slugify's transliteration makes of every BMP code point but NUL (beyond it, text-unidecode
    drops everything), from the backend it picks: Unidecode when installed, else text-unidecode."""
    try:
        module = import_module("unidecode")
    except ModuleNotFoundError:
        module = import_module("text_unidecode")
    return {"backend": module.__name__, "table": [module.unidecode(chr(code_point)) for code_point in range(1, 0x10000)]}


def pattern_verdicts(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each {pattern, values}: whether re.compile takes the pattern (jsonschema's "regex" format),
    and for each value whether re.search finds it (jsonschema's "pattern" keyword)."""
    verdicts = []
    for case in cases:
        try:
            compiled = re.compile(case["pattern"])
        except Exception as exc:  # re.error, and OverflowError for a repeat count beyond MAXREPEAT
            verdicts.append({"compiles": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        verdicts.append({"compiles": True, "matches": [compiled.search(value) is not None for value in case["values"]]})
    return verdicts


def format_verdicts(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The formats the server's schema validator checks, and its verdict on each value of each case
    ("error" where the check itself raises, which fails the server's request)."""
    # Through the server's own module, as the server imports it: older releases have an import
    # cycle when schema_tools is imported first.
    from prefect.server.api import validation  # noqa: F401
    from prefect.utilities.schema_tools.validation import _VALIDATOR

    checker = _VALIDATOR.FORMAT_CHECKER
    verdicts = []
    for case in cases:
        values = []
        for value in case["values"]:
            try:
                values.append(checker.conforms(value, case["format"]))
            except Exception:  # a check that raises something it does not declare, e.g. int("²")
                values.append("error")
        verdicts.append(values)
    return {"checked": sorted(checker.checkers), "verdicts": verdicts}


def idna_data() -> dict[str, Any]:
    """The tables the idn-hostname format check reads (idna.encode): idna's code point classes,
    joining types and scripts, and from Python's unicodedata the bidirectional class of every code
    point and the viramas (combining class 9). Ranges are flat [first, last, first, last, ...]."""
    import unicodedata

    import idna
    from idna import idnadata

    def from_intranges(encoded) -> list[int]:
        flat: list[int] = []
        for value in encoded:
            flat += [value >> 32, (value & 0xFFFFFFFF) - 1]
        return flat

    def ranges(accept) -> list[int]:
        flat: list[int] = []
        for code_point in range(0x110000):
            if accept(code_point):
                if flat and flat[-1] == code_point - 1:
                    flat[-1] = code_point
                else:
                    flat += [code_point, code_point]
        return flat

    bidi_classes: list[str] = []
    bidi_runs: list[int] = []  # [first code point, class index, ...]
    for code_point in range(0x110000):
        direction = unicodedata.bidirectional(chr(code_point))
        if direction not in bidi_classes:
            bidi_classes.append(direction)
        index = bidi_classes.index(direction)
        if not bidi_runs or bidi_runs[-1] != index:
            bidi_runs += [code_point, index]
    return {
        "idna": idna.__version__,
        "unicode": unicodedata.unidata_version,
        "classes": {name: from_intranges(idnadata.codepoint_classes[name]) for name in ("PVALID", "CONTEXTJ", "CONTEXTO")},
        "joining": {name: from_intranges(encoded) for name, encoded in sorted(idnadata.joining_types.items())},
        "scripts": {name: from_intranges(idnadata.scripts[name]) for name in ("Greek", "Han", "Hebrew", "Hiragana", "Katakana")},
        "virama": ranges(lambda code_point: unicodedata.combining(chr(code_point)) == 9),
        "bidi": {"classes": bidi_classes, "runs": bidi_runs},
    }


def bundle_commands(bundles: list[dict[str, Any]]) -> list[str]:
    """The `command` job variable `Flow.submit_to_work_pool` writes on an infrastructure-bound flow
    run (prefect/flows.py): the pool's bundle execution step, with the flow's launcher if it has
    one, as a shell-quoted command that downloads and runs the bundle stored under `key`."""
    from prefect._internal.launchers import resolve_bundle_step_with_launcher
    from prefect.bundles import convert_step_to_command
    from prefect.utilities.processutils import command_to_string

    commands = []
    for bundle in bundles:
        step = resolve_bundle_step_with_launcher(bundle["execution_step"], bundle.get("launcher"), "execution")
        commands.append(command_to_string(convert_step_to_command(step, bundle["key"])))
    return commands


def clear_environment_placeholders(case: dict[str, Any]) -> None:
    for name in ENV_PLACEHOLDER.findall(json.dumps(case)):
        os.environ.pop(name.lstrip("$"), None)


async def main() -> None:
    if sys.argv[1:] == ["--default-templates"]:
        json.dump({pool_type: worker.get_default_base_job_template() for pool_type, worker in workers().items()}, sys.stdout)
        return
    if sys.argv[1:] == ["--transliteration"]:
        json.dump(transliteration(), sys.stdout)
        return
    if sys.argv[1:] == ["--idna-data"]:
        json.dump(idna_data(), sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
        return
    if sys.argv[1:] == ["--bundle-commands"]:
        json.dump(bundle_commands(json.load(sys.stdin)["bundles"]), sys.stdout)
        return
    if sys.argv[1:] == ["--formats"]:
        json.dump(format_verdicts(json.load(sys.stdin)["cases"]), sys.stdout)
        return
    if sys.argv[1:] == ["--patterns"]:
        json.dump(pattern_verdicts(json.load(sys.stdin)["cases"]), sys.stdout)
        return
    # "--only validation" (the server half) or "--only render" (the worker half); both by default.
    halves = [sys.argv[2]] if sys.argv[1:2] == ["--only"] else ["validation", "render"]
    steps = {"validation": validate, "render": render}
    cases = json.load(sys.stdin)["cases"]
    results = {}
    for case in cases:
        clear_environment_placeholders(case)
        results[case["id"]] = {half: await steps[half](case) for half in halves}
    json.dump({
        "prefect_version": prefect.__version__,
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "results": results,
    }, sys.stdout, default=str)


if __name__ == "__main__":
    asyncio.run(main())
