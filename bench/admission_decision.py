"""CPU time of one admission's pure work: the decision and the JSON Patch, per review.

    python bench/admission_decision.py [--root TREE]

Runs injector.decision.decide and injector.patches.build_patch on the realistic 3-PVC pod of
tests/support/pods/02-multi-volume-projected.yaml (2 labelled PVCs, retention and pin annotations),
2,000 times per round, 7 rounds, and prints the best round's CPU time per review. CPU time, not wall
time, so a busy machine still gives comparable figures; `--root` points at another checkout (with
PYTHONPATH set to it) to compare two versions in one sitting (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from injector.config import InjectorSettings
from injector.decision import Context, PodRequest, PvcInfo, decide
from injector.patches import build_patch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=2000)
    args = parser.parse_args()
    pods = args.root / "tests/support/pods"
    if not pods.exists():  # checkouts before the tests were laid out by kind
        pods = args.root / "tests/injector/pods"
    case = yaml.safe_load((pods / "02-multi-volume-projected.yaml").read_text())
    settings = InjectorSettings()
    pvcs = {
        name: PvcInfo(name, spec.get("uid", ""), spec.get("labels") or {}, spec.get("annotations") or {})
        for name, spec in case["pvcs"].items()
    }
    request = PodRequest("uid", "CREATE", "pods", "", case["pod"]["metadata"]["namespace"], case["pod"])
    context = Context(own_namespace="lifeboat")
    best = float("inf")
    for _ in range(args.rounds):
        started = time.process_time()
        for _ in range(args.per_round):
            build_patch(case["pod"], decide(request, pvcs, context), settings)  # type: ignore[arg-type]
        best = min(best, (time.process_time() - started) / args.per_round)
    print(json.dumps({"microseconds_per_review": round(best * 1e6, 1), "rounds": args.rounds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
