"""The long-running backup sidecar (`lifeboat sidecar`), kept small enough to idle in 32 MiB.

`main` owns the process (validate, re-exec into the slim form, run, final backup on SIGTERM);
`cadence` and `retention` are pure; `scheduler` adapts cadence to APScheduler; `maintenance` runs
forget, prune and check; `metrics` serves Prometheus and the probes. Nothing here imports pydantic,
boto3 or kubernetes at module level.
"""
