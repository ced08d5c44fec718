"""Console operators: account rules, Argon2id hashes, the sign-in throttle, and the session cookie."""

from __future__ import annotations

import re

import pytest

from clarion import errors
from clarion.console import service
from clarion.db import Database
from tests.conftest import Api

PASSWORD = "a long enough password"


async def test_accounts_are_checked_and_their_passwords_hashed_with_argon2id(api: Api, db: Database) -> None:
    refused = [
        ("not-an-email", "admin", PASSWORD, "email", "email must be an email address"),
        ("a@example.com", "owner", PASSWORD, "role", "role must be one of viewer, editor, admin"),
        ("a@example.com", "admin", "short", "password", "password must be 10-1024 characters"),
    ]
    for email, role, password, field, message in refused:
        async with db.session() as session:
            with pytest.raises(errors.InvalidField) as raised:
                await service.create_operator(session, email, role, password)
        assert (raised.value.field, raised.value.message) == (field, message)
    async with db.session() as session:
        operator = await service.create_operator(session, " A@Example.com", "editor", PASSWORD)
    assert (operator.email, operator.role) == ("a@example.com", "editor")
    assert operator.password_hash.startswith("$argon2id$")
    assert PASSWORD not in operator.password_hash
    async with db.session() as session:
        with pytest.raises(errors.InvalidField) as raised:
            await service.create_operator(session, "a@EXAMPLE.com", "viewer", PASSWORD)
    assert raised.value.message == "There is an operator a@example.com already"


async def test_the_fifth_wrong_password_in_a_row_waits_and_the_wait_doubles(api: Api, db: Database) -> None:
    now = [1000.0]
    throttle = service.SignInThrottle(clock=lambda: now[0])
    async with db.session() as session:
        await service.create_operator(session, "b@example.com", "viewer", PASSWORD)

    async def attempt(password: str) -> str:
        return await sign_in(db, throttle, "B@example.com", password)

    assert [await attempt("wrong") for _ in range(4)] == ["401 The email or the password is wrong"] * 4
    assert await attempt(PASSWORD) == "429 Too many wrong passwords: try again in 30 seconds"
    now[0] += 30
    assert await attempt("wrong") == "429 Too many wrong passwords: try again in 60 seconds"
    now[0] += 60
    assert await attempt(PASSWORD) == "signed in"
    assert await attempt("wrong") == "401 The email or the password is wrong"
    # An unknown email is counted and answered as a wrong password is.
    unknown = [await sign_in(db, throttle, "nobody@example.com", PASSWORD) for _ in range(5)]
    assert unknown[-2:] == [
        "401 The email or the password is wrong",
        "429 Too many wrong passwords: try again in 30 seconds",
    ]


async def sign_in(db: Database, throttle: service.SignInThrottle, email: str, password: str) -> str:
    """How a sign-in attempt is answered: "signed in", or the error's status and message."""
    async with db.session() as session:
        try:
            await service.sign_in(session, throttle, email, password)
        except errors.ClarionError as refused:
            return f"{refused.status} {refused.message}"
    return "signed in"


async def test_over_https_the_cookies_are_secure_and_errors_are_pages(api: Api, db: Database) -> None:
    async with db.session() as session:
        await service.create_operator(session, "c@example.com", "admin", PASSWORD)
    client = api.client
    page = await client.get("https://clarion.test/console/sign-in")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert "Secure" in page.headers["set-cookie"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"csrf_token": token.group(1), "email": "c@example.com", "password": PASSWORD}
    signed = await client.post("https://clarion.test/console/sign-in", data=form)
    assert (signed.status_code, signed.headers["location"]) == (303, "/console/sites")
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith("clarion_console="))
    assert {"HttpOnly", "Secure", "SameSite=lax"} <= {part.strip() for part in cookie.split(";")}

    missing = await client.get("https://clarion.test/console/sites/no-such-key/campaigns")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "There is no app with app_key: no-such-key" in missing.text


def test_the_throttle_remembers_a_bounded_number_of_emails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "MAX_TRACKED", 4)
    now = [0.0]
    throttle = service.SignInThrottle(clock=lambda: now[0])
    for _ in range(service.FREE_FAILURES):
        throttle.failed("target@example.com")
    for index in range(3):
        throttle.failed(f"spray-{index}@example.com")
    throttle.failed("one-more@example.com")  # over the bound: the half whose waits end first go
    with pytest.raises(errors.SignInThrottled):
        throttle.check("target@example.com")
