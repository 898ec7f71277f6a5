"""A bundle storage on the local disk, for pushpool's end-to-end test of infrastructure-bound flows.

Prefect's work pool storage configuration names two modules, run as
`<launcher> -m <module> --<arg> <value> ... --key <key>`: an upload step (given the bundle file as
a last argument, from the submitting process) and an execution step (inside the job). Prefect ships
them for S3, GCS and Azure only; these two do the same with a directory both processes can read:
the test machine's, where the "container" is a local process of the Cloud Run emulator.
"""
