"""Execution step: runs the bundle stored at <directory>/<key> with Prefect's own bundle runner."""

import argparse
from pathlib import Path

try:
    from prefect.bundles.execute import execute_bundle_from_file
except ImportError:  # Prefect releases before bundles left `_experimental`
    from prefect._experimental.bundles.execute import execute_bundle_from_file


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--directory", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    execute_bundle_from_file(str(Path(args.directory) / args.key))


if __name__ == "__main__":
    main()
