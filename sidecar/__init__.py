"""Lifeboat's runtime inside the pod, one sub-package per process, edges apart.

- `sidecar.restore`: the restore init container (`lifeboat restore`): the pure restore table
  (`decision`) and the loop that applies it (`run`).
- `sidecar.backup`: one guarded backup of one volume (`guard` decides, `guarded` acts), shared by the
  long-running sidecar and the one-shot `lifeboat backup` (`oneshot`).
- `sidecar.daemon`: the long-running backup sidecar (`lifeboat sidecar`): scheduling, retention,
  prune and check, metrics, the final backup.
- `sidecar.edges`: the I/O edges: restic, the S3 probe, the volume, usage measurement.
- top level: what the processes share: `settings` (the validated configuration, the single
  declaration of every variable), `runtime` (its plain form for the slim daemon), `repository`,
  `identity`, `handover`, `locking`.

The injector (a separate package) never imports this one.
"""
