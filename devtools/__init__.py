"""Development tooling: the demo (`make demo`), throwaway S3 servers and awkward test trees.

Not part of the product and not in the image (images/Dockerfile copies `lifeboat`, `sidecar` and
`injector` only); import-linter keeps the runtime packages from importing it.
"""
