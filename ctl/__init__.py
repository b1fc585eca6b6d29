"""`lifeboat status | snapshots | ls | doctor` (and `kubectl lifeboat ...`): the operator's view.

Runs on the user's workstation, not in the cluster: it reads the cluster with the user's
kubeconfig and the store with the chart's source Secret (the per-namespace restic password is
derived by ``injector.credentials``, the same code the controller mirrors with). It only reads:
no Kubernetes write, restic runs with ``--no-lock``.

- ``ctl.report``: pure: per-PVC rows, problems, tables and JSON;
- ``ctl.doctor``: pure: the installation checks over gathered facts;
- ``ctl.gather``: the I/O: the Kubernetes API, S3 (boto3) and restic;
- ``ctl.main``: argument parsing and dispatch (from ``lifeboat.cli``).

Nothing in the runtime imports this package (import-linter).
"""
