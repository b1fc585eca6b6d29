"""Self-bootstrapped certificates: issued once, kept, re-issued before expiry, CA kept stable."""

from __future__ import annotations

import datetime as dt
import ssl

from cryptography import x509

from injector.tls import Bundle, not_after, renew, renewal_reason

NAMES = ["lifeboat-injector", "lifeboat-injector.lifeboat", "lifeboat-injector.lifeboat.svc"]
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def test_no_certificate_means_one_is_issued_for_every_service_name() -> None:
    assert renewal_reason(None, NAMES, NOW, 30) == "no certificate yet"
    bundle = renew(None, NAMES, NOW, 90, 30)
    cert = x509.load_pem_x509_certificate(bundle.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == NAMES
    assert not_after(bundle.cert) - NOW > dt.timedelta(days=89)
    assert renewal_reason(bundle, NAMES, NOW, 30) is None


def test_the_serving_certificate_verifies_against_the_ca() -> None:
    bundle = renew(None, NAMES, dt.datetime.now(dt.UTC), 90, 30)
    store = ssl.create_default_context(cadata=bundle.ca_cert.decode())
    assert store.cert_store_stats()["x509_ca"] == 1
    ca = x509.load_pem_x509_certificate(bundle.ca_cert)
    cert = x509.load_pem_x509_certificate(bundle.cert)
    cert.verify_directly_issued_by(ca)


def test_a_certificate_close_to_expiry_is_renewed_with_the_same_ca() -> None:
    bundle = renew(None, NAMES, NOW, 90, 30)
    later = NOW + dt.timedelta(days=61)
    assert renewal_reason(bundle, NAMES, later, 30) == "serving certificate expires soon"
    renewed = renew(bundle, NAMES, later, 90, 30)
    assert renewed.ca_cert == bundle.ca_cert and renewed.cert != bundle.cert
    assert renewal_reason(renewed, NAMES, later, 30) is None


def test_changed_service_names_or_garbage_force_a_new_certificate() -> None:
    bundle = renew(None, NAMES, NOW, 90, 30)
    assert renewal_reason(bundle, [*NAMES, "extra"], NOW, 30) == "service DNS names changed"
    broken = Bundle(b"garbage", bundle.ca_key, bundle.cert, bundle.key)
    assert renewal_reason(broken, NAMES, NOW, 30) == "certificate data unreadable"
    fresh = renew(broken, NAMES, NOW, 90, 30)
    assert fresh.ca_cert != bundle.ca_cert


def test_a_foreign_serving_certificate_is_replaced() -> None:
    one, two = renew(None, NAMES, NOW, 90, 30), renew(None, NAMES, NOW, 90, 30)
    mixed = Bundle(one.ca_cert, one.ca_key, two.cert, two.key)
    assert renewal_reason(mixed, NAMES, NOW, 30) == "serving certificate not issued by the stored CA"


def test_secret_data_round_trips() -> None:
    bundle = renew(None, NAMES, NOW, 90, 30)
    assert Bundle.from_secret_data(bundle.as_secret_data()) == bundle
    assert Bundle.from_secret_data({"tls.crt": b"x"}) is None
