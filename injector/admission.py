"""AdmissionReview in, AdmissionReview out: the thin layer between HTTP and the decision.

Parses and checks the request (naming the missing or malformed field), asks the PVC lookup for
each claim the pod mounts, calls the pure decision, encodes the pure patch. It never raises on
bad input: every failure becomes either an HTTP 400 with a JSON error (when there is no request
uid to answer) or an AdmissionReview that denies, so a malformed request can never let a pod
through un-injected. The JSON types of the pod fields the decision and the patch read are checked
here (:func:`check_pod`), so those pure modules never see a list where an object belongs; the
hostile-input run in docs/RELIABILITY.md holds this to 0 crashes.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from injector.config import SKIP_ANNOTATION, InjectorSettings
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
from injector.patches import LOWEST_PORT, build_patch, free_port
from lifeboat.logs import event

log = logging.getLogger("lifeboat.injector.admission")

API_VERSION = "admission.k8s.io/v1"
PvcLookup = Callable[[str, str], PvcInfo | PvcUnavailable]
NamespaceLabels = Callable[[str], Mapping[str, str] | None]
# Longest user value quoted back in an error message; the rest is cut (a reply must stay small).
SHOWN_CHARS = 80


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


def shown(value: Any) -> str:
    """A user's value for an error message: a short string quoted, anything else by its JSON type.

    Never ``repr`` of arbitrary JSON: it may be megabytes long or nested deeper than the recursion limit.
    """
    if isinstance(value, str):
        return repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "...")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__


_KINDS: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def _field(value: Any, kind: type, where: str, uid: str, fix: str) -> Any:
    """``value`` when it is null/absent or of JSON type ``kind``; else BadReview naming ``where``."""
    if value is None or isinstance(value, kind):
        return value
    raise BadReview(f"{where} must be {_KINDS[kind]}, got {shown(value)}; {fix}", uid)


_POD_FIX = "send a Pod as the Pod API defines it (kubectl explain pod)"


def check_pod(pod: dict[str, Any], uid: str) -> None:
    """Refuses a pod whose fields the decision and the patch read have the wrong JSON type.

    The API server decodes pods into typed structs before calling webhooks, so these only come
    from a hand-made request; an empty ``claimName`` does come from users (validation runs after
    mutating webhooks), and is named here rather than silently skipped.
    """
    where = "request.object"
    metadata = _field(pod.get("metadata"), dict, f"{where}.metadata", uid, _POD_FIX) or {}
    for key in ("name", "generateName", "namespace"):
        _field(metadata.get(key), str, f"{where}.metadata.{key}", uid, _POD_FIX)
    annotations = _field(metadata.get("annotations"), dict, f"{where}.metadata.annotations", uid, _POD_FIX)
    for key, value in (annotations or {}).items():
        if not isinstance(value, str):
            raise BadReview(
                f"{where}.metadata.annotations[{shown(key)}] must be a string, got {shown(value)}; "
                f'quote annotation values in YAML ("true", "5")',
                uid,
            )
    spec = _field(pod.get("spec"), dict, f"{where}.spec", uid, _POD_FIX) or {}
    _field(spec.get("securityContext"), dict, f"{where}.spec.securityContext", uid, _POD_FIX)
    volumes = _field(spec.get("volumes"), list, f"{where}.spec.volumes", uid, _POD_FIX) or []
    for i, volume in enumerate(volumes):
        at = f"{where}.spec.volumes[{i}]"
        _field(volume, dict, at, uid, _POD_FIX)
        if volume is None:
            raise BadReview(f"{at} is null; remove it or give it a name and a source", uid)
        name = volume.get("name")
        if not isinstance(name, str) or not name:
            raise BadReview(f"{at}.name must be a non-empty string, got {shown(name)}; name the volume", uid)
        source = _field(
            volume.get("persistentVolumeClaim"), dict, f"{at}.persistentVolumeClaim", uid, _POD_FIX
        )
        if source is not None:
            claim = source.get("claimName")
            if not isinstance(claim, str) or not claim:
                raise BadReview(
                    f"{at}.persistentVolumeClaim.claimName must be a non-empty string, got {shown(claim)}; "
                    f"set it to the name of the PersistentVolumeClaim volume {shown(name)} mounts",
                    uid,
                )
    for key in ("containers", "initContainers"):
        containers = _field(spec.get(key), list, f"{where}.spec.{key}", uid, _POD_FIX) or []
        for i, container in enumerate(containers):
            at = f"{where}.spec.{key}[{i}]"
            if not isinstance(container, dict):
                raise BadReview(f"{at} must be an object, got {shown(container)}; {_POD_FIX}", uid)
            _field(container.get("name"), str, f"{at}.name", uid, _POD_FIX)
            ports = _field(container.get("ports"), list, f"{at}.ports", uid, _POD_FIX) or []
            for j, port in enumerate(ports):
                if not isinstance(port, dict):
                    raise BadReview(f"{at}.ports[{j}] must be an object, got {shown(port)}; {_POD_FIX}", uid)


def parse_review(body: bytes) -> PodRequest:
    """The pod request inside an ``admission.k8s.io/v1`` AdmissionReview; raises BadReview."""
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadReview(f"body is not JSON ({exc.__class__.__name__}); send an AdmissionReview") from None
    except RecursionError:
        raise BadReview(
            "body nests JSON too deeply to be an AdmissionReview; send an AdmissionReview"
        ) from None
    if not isinstance(review, dict):
        raise BadReview("body must be a JSON object (an AdmissionReview)")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise BadReview(
            f"apiVersion/kind must be {API_VERSION}/AdmissionReview, got "
            f"{shown(review.get('apiVersion'))}/{shown(review.get('kind'))}; "
            f"set admissionReviewVersions: [v1]"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid is missing or empty")
    resource = (
        _field(request.get("resource"), dict, "request.resource", uid, "send a GroupVersionResource") or {}
    )
    resource_name = _field(resource.get("resource"), str, "request.resource.resource", uid, "e.g. pods") or ""
    sub_resource = _field(request.get("subResource"), str, "request.subResource", uid, "e.g. status") or ""
    operation = request.get("operation")
    if not isinstance(operation, str):
        raise BadReview("request.operation is missing", uid)
    namespace = (
        _field(request.get("namespace"), str, "request.namespace", uid, "send the pod's namespace") or ""
    )
    obj = request.get("object")
    if operation == "CREATE" and not isinstance(obj, dict):
        raise BadReview("request.object is missing or not an object for a CREATE", uid)
    pod: dict[str, Any] = obj if isinstance(obj, dict) else {}
    if not isinstance(pod.get("spec") or {}, dict):
        raise BadReview("request.object.spec must be an object", uid)
    metadata = _field(pod.get("metadata"), dict, "request.object.metadata", uid, _POD_FIX) or {}
    if not namespace:
        namespace = _field(metadata.get("namespace"), str, "request.object.metadata.namespace", uid, _POD_FIX)
    if operation == "CREATE" and resource_name == "pods" and not sub_resource:
        check_pod(pod, uid)  # the only requests whose pod the decision reads
    return PodRequest(
        uid=uid,
        operation=operation,
        resource=resource_name,
        sub_resource=sub_resource,
        namespace=namespace or "",
        pod=pod,
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
    try:
        context = Context(
            own_namespace=settings.namespace,
            excluded_namespaces=settings.excluded_namespaces,
            native_sidecars=native_sidecars,
            namespace_labels=namespace_labels(request.namespace) if request.namespace else None,
        )
        claims = pvc_claims(request.pod) if precheck(request, context) is None else []
    except Exception as exc:  # a bug must deny, never admit un-injected
        return _internal_error(request, exc)
    # Outside the try: a fast lookup raises its "needs I/O" LookupError to the server, which retries
    # on a worker thread with the slow lookup.
    pvcs: dict[str, PvcInfo | PvcUnavailable] = {
        claim: lookup(request.namespace, claim) for _, claim in claims
    }
    try:
        decision = decide(request, pvcs, context)
        spec = request.pod.get("spec") or {}
        if isinstance(decision, Inject) and free_port(spec, settings.metrics_port) is None:
            decision = Deny(
                f"Lifeboat refuses the pod: its containers declare every port from "
                f"{min(settings.metrics_port, LOWEST_PORT)} to 65535, leaving none for the backup "
                f"sidecar's metrics. Declare fewer containerPorts, or annotate the pod "
                f'{SKIP_ANNOTATION}: "true" to run it without Lifeboat.'
            )
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
        return _internal_error(request, exc)
    return Reply(200, _review(response), outcome)


def _internal_error(request: PodRequest, exc: Exception) -> Reply:
    event(log, "admission.error", logging.ERROR, error=exc.__class__.__name__, namespace=request.namespace)
    response = {
        "uid": request.uid,
        "allowed": False,
        "status": {"code": 500, "message": f"Lifeboat injector internal error ({exc.__class__.__name__})"},
    }
    return Reply(200, _review(response), "denied")
