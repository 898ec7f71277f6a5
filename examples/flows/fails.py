"""A flow that always fails, so tests can see a FAILED run reported back to Prefect."""

from prefect import flow, get_run_logger


@flow
def fails() -> None:
    get_run_logger().info("about to fail on purpose")
    raise RuntimeError("this flow fails on purpose")


if __name__ == "__main__":
    fails()
