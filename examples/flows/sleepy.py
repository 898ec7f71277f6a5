"""A flow that takes its time: the demo cancels it while it runs."""

import time

from prefect import flow, get_run_logger


@flow
def sleepy(seconds: int = 120) -> None:
    get_run_logger().info("sleeping for %s s", seconds)
    time.sleep(seconds)


if __name__ == "__main__":
    sleepy()
