"""Upload step: copies the bundle file (and a sidecar file of the same name, if any) to <directory>/<key>."""

import argparse
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--directory", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("local_filepath")
    args = parser.parse_args()
    target = Path(args.directory) / args.key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.local_filepath, target)


if __name__ == "__main__":
    main()
