"""Login links and sessions of the web view: one use per link, audiences kept apart from the
API's tokens, expiry, the CSRF token."""
import time

import jwt
import pytest

from controller.api import tokens
from controller.core.errors import LabError
from controller.web import session


def ticket(link: str) -> str:
    return link.split("ticket=", 1)[1]


def test_a_link_is_used_once_and_gives_a_session(lab):
    link = session.login_link(lab, "https://127.0.0.1:7443")
    assert link.startswith("https://127.0.0.1:7443/lab/login?ticket=")
    cookie = session.redeem(lab, ticket(link))
    claims = session.session(lab, cookie)
    assert claims["exp"] - time.time() > 11 * 3600
    with pytest.raises(tokens.Unauthorized, match="used already"):
        session.redeem(lab, ticket(link))


def test_tokens_of_one_kind_are_not_another(lab):
    api_token = tokens.mint(lab)
    with pytest.raises(tokens.Unauthorized, match="not valid for this lab"):
        session.redeem(lab, api_token)
    with pytest.raises(tokens.Unauthorized):
        session.session(lab, api_token)
    link_ticket = ticket(session.login_link(lab, "https://x"))
    with pytest.raises(tokens.Unauthorized):
        session.session(lab, link_ticket)
    cookie = session.redeem(lab, link_ticket)
    with pytest.raises(tokens.Unauthorized):
        tokens.verify(lab, cookie)  # a session cookie is no API token
    with pytest.raises(tokens.Unauthorized, match="not logged in"):
        session.session(lab, None)


def test_expired_and_forged_links_are_refused(lab):
    now = int(time.time())
    old = jwt.encode({"iss": tokens.ISSUER, "aud": session.LOGIN_AUDIENCE, "iat": now - 700, "exp": now - 100,
                      "jti": "x"}, tokens.lab_key(lab), algorithm="HS256")
    with pytest.raises(tokens.Unauthorized, match="expired") as exc:
        session.redeem(lab, old)
    assert exc.value.code == "ExpiredAuthenticationToken"
    forged = jwt.encode({"iss": tokens.ISSUER, "aud": session.LOGIN_AUDIENCE, "iat": now, "exp": now + 60,
                         "jti": "y"}, b"k" * 32, algorithm="HS256")
    with pytest.raises(tokens.Unauthorized):
        session.redeem(lab, forged)
    with pytest.raises(LabError, match="--expires-in"):
        session.login_link(lab, "https://x", ttl=0)


def test_the_csrf_token_belongs_to_its_session(lab):
    a = session.session(lab, session.redeem(lab, ticket(session.login_link(lab, "https://x"))))
    b = session.session(lab, session.redeem(lab, ticket(session.login_link(lab, "https://x"))))
    session.check_csrf(lab, a, session.csrf_token(lab, a))
    for wrong in (None, "", session.csrf_token(lab, b)):
        with pytest.raises(LabError) as exc:
            session.check_csrf(lab, a, wrong)
        assert exc.value.status == 403 and exc.value.field == session.CSRF_HEADER


def test_the_gates_leave_out_the_batch_in_flight_and_tell_after_the_end():
    from types import SimpleNamespace

    from controller.ops import upgrade_plan as plan
    from controller.web.snapshot import _thresholds
    up = SimpleNamespace(policy={"maxUnhealthyInstancePercent": 20, "maxUnhealthyUpgradedInstancePercent": 20},
                         status="RollingForward", error_code=None)
    rows = [{"instanceId": 0, "state": "Succeeded"}, {"instanceId": 1, "state": "InProgress"}]
    health = {0: "Healthy", 1: "Unknown", 2: "Healthy", 3: "Healthy", 4: "Unhealthy"}
    unhealthy, upgraded = _thresholds(up, rows, health, 5)
    assert (unhealthy["count"], unhealthy["of"], unhealthy["exceeded"]) == (1, 5, False)  # 1 is being upgraded
    assert (upgraded["count"], upgraded["of"], upgraded["exceeded"]) == (0, 1, False)
    health[2] = "Unknown"
    assert _thresholds(up, rows, health, 5)[0]["exceeded"]  # 2 of 5 outside the batch: more than 20 %
    up.status, up.error_code = "Completed", None  # ended: today's share is shown, never as what stopped it
    assert not _thresholds(up, rows, health, 5)[0]["exceeded"]
    up.status, up.error_code = "Faulted", plan.DURING
    assert _thresholds(up, rows, health, 5)[0]["exceeded"]
