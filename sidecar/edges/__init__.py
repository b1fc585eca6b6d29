"""The runtime's I/O edges: restic (`restic`), the S3 probe (`store`), the volume (`volume`) and
what is on it (`usage`). Decisions never import these; these never decide.
"""
