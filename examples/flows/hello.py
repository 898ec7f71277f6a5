"""A flow that succeeds: what pushpool's end-to-end tests and the demo launch."""

from prefect import flow, get_run_logger


@flow
def hello(name: str = "pushpool") -> str:
    greeting = f"hello, {name}"
    get_run_logger().info(greeting)
    return greeting


if __name__ == "__main__":
    hello()
