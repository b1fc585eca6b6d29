"""Lifeboat's runtime inside the pod: the restore init container and the backup sidecar.

Everything that touches restic, S3 or the volume lives here; the injector (a separate package)
only decides what to inject and never imports the runtime's I/O edges.
"""
