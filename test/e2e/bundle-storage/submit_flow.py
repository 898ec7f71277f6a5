"""Submits a flow to a work pool as prefect-gcp's @cloud_run decorator does, without a deployment,
and prints the flow run's id. Usage: submit_flow.py <work pool> <launcher python>"""

import sys

from prefect import flow
from prefect_gcp.decorators import cloud_run


@flow(log_prints=True)
def add(x: int, y: int) -> int:
    print(f"{x} + {y} = {x + y}")
    return x + y


if __name__ == "__main__":
    pool, python = sys.argv[1], sys.argv[2]
    bound = cloud_run(work_pool=pool, launcher=[python])(add)
    future = bound.submit_to_work_pool(x=2, y=3)
    print(future.flow_run_id)
