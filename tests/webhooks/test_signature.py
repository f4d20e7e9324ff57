from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest

from conftest import NOW
from discretion import WebhookSignatureError
from discretion.webhooks import SIGNATURE_HEADER, sign, verify_signature

from .conftest import SECRET

BODY = b'{"id":"evt_1","type":"approval.opened"}'


def test_a_signature_is_the_hmac_of_the_time_and_the_raw_body():
    value = sign(SECRET, BODY, at=NOW)
    t = int(NOW.timestamp())
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert value == f"t={t},v1={expected}"
    verify_signature(SECRET, {SIGNATURE_HEADER: value}, BODY, now=NOW)


def test_header_names_are_matched_whatever_their_case():
    verify_signature(SECRET, {"x-discretion-signature": sign(SECRET, BODY, at=NOW)}, BODY, now=NOW)


def test_a_tampered_body_fails():
    headers = {SIGNATURE_HEADER: sign(SECRET, BODY, at=NOW)}
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_signature(SECRET, headers, BODY.replace(b"opened", b"approved"), now=NOW)


def test_another_secret_fails():
    headers = {SIGNATURE_HEADER: sign(SECRET, BODY, at=NOW)}
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_signature("another-secret-0123456789", headers, BODY, now=NOW)


def test_a_replay_outside_the_tolerance_fails_and_inside_passes():
    headers = {SIGNATURE_HEADER: sign(SECRET, BODY, at=NOW)}
    verify_signature(SECRET, headers, BODY, now=NOW + timedelta(seconds=299))
    with pytest.raises(WebhookSignatureError, match="more than 300 s from now"):
        verify_signature(SECRET, headers, BODY, now=NOW + timedelta(seconds=301))
    with pytest.raises(WebhookSignatureError, match="more than 60 s"):
        verify_signature(SECRET, headers, BODY, now=NOW - timedelta(seconds=61), tolerance_s=60)


def test_a_forged_time_with_a_genuine_digest_fails():
    value = sign(SECRET, BODY, at=NOW)
    later = int((NOW + timedelta(hours=1)).timestamp())
    forged = value.replace(f"t={int(NOW.timestamp())}", f"t={later}")
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify_signature(SECRET, {SIGNATURE_HEADER: forged}, BODY, now=NOW + timedelta(hours=1))


def test_any_one_of_several_signatures_passes_while_a_secret_is_rotated():
    old = sign("old-secret-0123456789abc", BODY, at=NOW)
    new = sign(SECRET, BODY, at=NOW)
    both = f"{old},{new.split(',')[1]}"
    verify_signature(SECRET, {SIGNATURE_HEADER: both}, BODY, now=NOW)


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({}, "has no X-Discretion-Signature header"),
        ({SIGNATURE_HEADER: "v1=abc"}, "write t=<unix seconds>,v1=<hex digest>"),
        ({SIGNATURE_HEADER: "t=soon,v1=abc"}, "t='soon' is not a unix time"),
        # Too large for a float: the comparison with now raised OverflowError.
        ({SIGNATURE_HEADER: f"t={'9' * 400},v1=00"}, "is not a unix time"),
        ({SIGNATURE_HEADER: "t=+1764590400,v1=00"}, "is not a unix time"),
        ({SIGNATURE_HEADER: "t=1_764_590_400,v1=00"}, "is not a unix time"),
        # Not ASCII: compared as text, it raised TypeError instead of failing the check.
        ({SIGNATURE_HEADER: f"t={int(NOW.timestamp())},v1=\u00e9"}, "no v1 signature matches"),
    ],
)
def test_a_missing_or_malformed_header_fails(headers, match):
    with pytest.raises(WebhookSignatureError, match=match):
        verify_signature(SECRET, headers, BODY, now=NOW)
