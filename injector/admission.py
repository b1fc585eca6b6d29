"""AdmissionReview in, AdmissionReview out: the thin layer between HTTP and the decision.

Parses and checks the request (naming the missing or malformed field), asks the PVC lookup for
each claim the pod mounts, calls the pure decision, encodes the pure patch. It never raises on
bad input: every failure becomes either an HTTP 400 with a JSON error (when there is no request
uid to answer) or an AdmissionReview that denies, so a malformed request can never let a pod
through un-injected.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from injector.config import InjectorSettings
from injector.decision import (
    Admit,
    Context,
    Deny,
    Inject,
    PodRequest,
    PvcInfo,
    PvcUnavailable,
    decide,
    precheck,
    pvc_claims,
)
from injector.patches import build_patch
from lifeboat.logs import event

log = logging.getLogger("lifeboat.injector.admission")

API_VERSION = "admission.k8s.io/v1"
PvcLookup = Callable[[str, str], PvcInfo | PvcUnavailable]
NamespaceLabels = Callable[[str], Mapping[str, str] | None]


class BadReview(ValueError):
    """The body is not an AdmissionReview we can answer; ``uid`` is set when one was found."""

    def __init__(self, message: str, uid: str | None = None) -> None:
        super().__init__(message)
        self.uid = uid


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    outcome: str  # injected | admitted | denied | bad-request


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def _review(response: dict[str, Any]) -> bytes:
    return json.dumps({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}).encode()


def parse_review(body: bytes) -> PodRequest:
    """The pod request inside an ``admission.k8s.io/v1`` AdmissionReview; raises BadReview."""
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadReview(f"body is not JSON ({exc.__class__.__name__}); send an AdmissionReview") from None
    if not isinstance(review, dict):
        raise BadReview("body must be a JSON object (an AdmissionReview)")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise BadReview(
            f"apiVersion/kind must be {API_VERSION}/AdmissionReview, got "
            f"{review.get('apiVersion')!r}/{review.get('kind')!r}; set admissionReviewVersions: [v1]"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid is missing or empty")
    resource = request.get("resource") or {}
    if not isinstance(resource, dict):
        raise BadReview("request.resource must be an object", uid)
    operation = request.get("operation")
    if not isinstance(operation, str):
        raise BadReview("request.operation is missing", uid)
    namespace = request.get("namespace") or ""
    if not isinstance(namespace, str):
        raise BadReview("request.namespace must be a string", uid)
    obj = request.get("object")
    if operation == "CREATE" and not isinstance(obj, dict):
        raise BadReview("request.object is missing or not an object for a CREATE", uid)
    if isinstance(obj, dict) and not isinstance(obj.get("spec") or {}, dict):
        raise BadReview("request.object.spec must be an object", uid)
    return PodRequest(
        uid=uid,
        operation=operation,
        resource=str(resource.get("resource", "")),
        sub_resource=str(request.get("subResource") or ""),
        namespace=namespace or str(((obj or {}).get("metadata") or {}).get("namespace") or ""),
        pod=obj if isinstance(obj, dict) else {},
    )


def _pod_name(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("name") or (str(meta.get("generateName", "")) + "*"))


def review(
    body: bytes,
    settings: InjectorSettings,
    lookup: PvcLookup,
    namespace_labels: NamespaceLabels,
    native_sidecars: bool,
) -> Reply:
    """Answers one AdmissionReview body."""
    try:
        request = parse_review(body)
    except BadReview as exc:
        event(log, "admission.bad_request", logging.WARNING, error=str(exc))
        if exc.uid is None:
            return Reply(400, _error_body(str(exc)), "bad-request")
        message = f"Lifeboat refuses a malformed AdmissionReview: {exc}"
        return Reply(
            200,
            _review({"uid": exc.uid, "allowed": False, "status": {"code": 400, "message": message}}),
            "bad-request",
        )
    context = Context(
        own_namespace=settings.namespace,
        excluded_namespaces=settings.excluded_namespaces,
        native_sidecars=native_sidecars,
        namespace_labels=namespace_labels(request.namespace) if request.namespace else None,
    )
    pvcs: dict[str, PvcInfo | PvcUnavailable] = {}
    if precheck(request, context) is None:
        pvcs = {claim: lookup(request.namespace, claim) for _, claim in pvc_claims(request.pod)}
    try:
        decision = decide(request, pvcs, context)
        response: dict[str, Any] = {"uid": request.uid, "allowed": True}
        if isinstance(decision, Inject):
            ops = build_patch(request.pod, decision, settings)
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
            outcome = "injected"
            event(
                log,
                "admission.injected",
                namespace=request.namespace,
                pod=_pod_name(request.pod),
                pvcs=[v.pvc for v in decision.volumes],
                native_sidecar=decision.native_sidecar,
            )
        elif isinstance(decision, Deny):
            response["allowed"] = False
            response["status"] = {"code": decision.code, "message": decision.message}
            outcome = "denied"
            event(
                log,
                "admission.denied",
                logging.WARNING,
                namespace=request.namespace,
                pod=_pod_name(request.pod),
                reason=decision.message,
            )
        else:
            assert isinstance(decision, Admit)
            outcome = "admitted"
            if decision.warnings:
                event(
                    log,
                    "admission.warned",
                    namespace=request.namespace,
                    pod=_pod_name(request.pod),
                    warnings=list(decision.warnings),
                )
        warnings = getattr(decision, "warnings", ())
        if warnings:
            response["warnings"] = list(warnings)
    except Exception as exc:  # a bug must deny, never admit un-injected
        event(
            log, "admission.error", logging.ERROR, error=exc.__class__.__name__, namespace=request.namespace
        )
        response = {
            "uid": request.uid,
            "allowed": False,
            "status": {
                "code": 500,
                "message": f"Lifeboat injector internal error ({exc.__class__.__name__})",
            },
        }
        outcome = "denied"
    return Reply(200, _review(response), outcome)
