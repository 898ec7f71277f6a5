"""The events Prefect's own cloud-run-v2 worker emits for a flow run, for comparison with pushpool's.

Test-only. Run with the Python of a venv that has prefect and prefect-gcp, PREFECT_API_URL (and
PREFECT_API_AUTH_STRING) set to the server holding the run:

    <venv>/bin/python test/prefect/worker_events.py FLOW_RUN_ID WORKER_NAME JOB_NAME STATUS_CODE

Reads the run, its deployment, flow and work pool with Prefect's client, as the worker does; gives
them to the job configuration as prepare_for_flow_run does (`_related_objects`); then calls the
worker's own _emit_flow_run_submitted_event and _emit_flow_run_executed_event, with emit_event
replaced by one that records the Event instead of sending it. Prints both events as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from uuid import UUID

os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")

import prefect.workers.base as worker_base  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.events import Event  # noqa: E402
from prefect.workers.base import BaseJobConfiguration  # noqa: E402
from prefect_gcp.workers.cloud_run_v2 import CloudRunWorkerV2, CloudRunWorkerV2Result  # noqa: E402

emitted: list[Event] = []


def record_event(event, resource, related=None, follows=None, **kwargs):
    built = Event(
        event=event,
        resource=resource,
        related=related or [],
        **({"follows": follows.id} if follows is not None else {}),
    )
    emitted.append(built)
    return built


async def main(flow_run_id: str, worker_name: str, job_name: str, status_code: int) -> None:
    async with get_client() as client:
        flow_run = await client.read_flow_run(UUID(flow_run_id))
        deployment = await client.read_deployment(flow_run.deployment_id)
        flow = await client.read_flow(flow_run.flow_id)
        work_pool = await client.read_work_pool(flow_run.work_pool_name)

    worker = CloudRunWorkerV2(work_pool_name=work_pool.name, name=worker_name)
    worker._work_pool = work_pool
    # _related_resources is BaseJobConfiguration's; the cloud-run-v2 subclass would look for GCP credentials.
    configuration = BaseJobConfiguration.model_construct()
    configuration._related_objects = {"deployment": deployment, "flow": flow, "flow-run": flow_run}

    worker_base.emit_event = record_event
    submitted = worker._emit_flow_run_submitted_event(configuration)
    result = CloudRunWorkerV2Result(identifier=job_name, status_code=status_code)
    worker._emit_flow_run_executed_event(result, configuration, submitted)
    print(json.dumps([event.model_dump(mode="json") for event in emitted]))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
