"""SMTP_URL, INVITE_URL_TEMPLATE and the outbox's timings: refused with a line naming the
problem, never echoing an SMTP password."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from org_service.config import Settings, configuration_problems

SECRET = "x" * 48


def settings(**values: Any) -> Settings:
    return Settings(JWT_SECRET_KEY=SECRET, **values)


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.example.com", ("mail.example.com", 25, None, None, False, False)),
    ("smtp://u%40x:p%2Fw@mail.example.com:587?starttls=true",
     ("mail.example.com", 587, "u@x", "p/w", False, True)),
    ("smtps://u:pw@mail.example.com", ("mail.example.com", 465, "u", "pw", True, False)),
])
def test_smtp_urls_name_host_port_credentials_and_tls(url: str, expected: tuple[Any, ...]
                                                      ) -> None:
    target = settings(SMTP_URL=url).smtp_target
    assert target is not None
    assert (target.hostname, target.port, target.username, target.password,
            target.implicit_tls, target.starttls) == expected
    assert "pw" not in repr(target)


@pytest.mark.parametrize(("url", "problem"), [
    ("http://u:hunter2-pw@mail.example.com", "smtp:// or smtps://"),
    ("smtp://u:hunter2-pw@:25", "names no host"),
    ("smtp://u:hunter2-pw@mail.example.com:99999", "port"),
    ("smtp://u:hunter2-pw@mail.example.com?tls=1", "starttls"),
    ("smtps://u:hunter2-pw@mail.example.com?starttls=true", "asks for starttls too"),
])
def test_a_bad_smtp_url_is_one_line_without_its_password(url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(SMTP_URL=url)
    [line] = configuration_problems(refused.value)
    assert line.startswith("SMTP_URL: ") and problem in line
    assert "hunter2" not in line


def test_an_empty_smtp_url_means_the_log() -> None:
    assert settings(SMTP_URL="").smtp_target is None


@pytest.mark.parametrize("template", ["https://app.example.com/join",
                                      "https://app.example.com/join/{token}/{org}",
                                      "https://app.example.com/join/{}"])
def test_the_invite_url_template_must_take_the_token_and_nothing_else(template: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(INVITE_URL_TEMPLATE=template)
    [line] = configuration_problems(refused.value)
    assert line.startswith("INVITE_URL_TEMPLATE: ")


def test_a_lease_shorter_than_an_smtp_conversation_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(OUTBOX_LEASE_SECONDS=30, SMTP_TIMEOUT_SECONDS=10)
    assert "OUTBOX_LEASE_SECONDS" in configuration_problems(refused.value)[0]
