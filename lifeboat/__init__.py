"""Lifeboat's shared kernel: the one `lifeboat` entry point and the user-facing contract.

Three packages make up the product and one more serves development:

- `lifeboat` (this one): the `lifeboat` command (`lifeboat.cli`, dispatch only), every grammar a
  user writes (`lifeboat.contract`: labels, annotations, schedules, retention, pins, repository
  URLs, env names), exit codes and JSON logging. It imports neither runtime package at module level.
- `sidecar`: what runs in the app's pod (the restore init container, the backup sidecar, the one-shot
  backup), with restic, S3 and the volume behind thin edges.
- `injector`: the admission webhook and the credentials controller.
- `devtools` (not in the image): the demo, throwaway S3 servers and test trees.

docs/architecture.md draws the processes; pyproject.toml's import-linter contracts hold the layers.
"""
