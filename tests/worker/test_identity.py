"""Identity resolution: user ids win, visitors are scored apart, conflicts stay apart."""

from __future__ import annotations

import pytest

from stream.scoring.identity import alias_key, resolve, visitor_lead_id


def table(**entries: str) -> dict[str, str]:
    return dict(entries)


def test_anonymous_visitor_gets_a_visitor_lead() -> None:
    aliases: dict[str, str] = {}
    found = resolve({"anonymous_id": "A1", "type": "web.page_view"}, aliases.get)
    assert found.lead_id == "anon:A1"
    assert found.alias_writes == {"a:A1": "anon:A1"}
    assert found.handover_from is None


def test_identify_hands_the_visitor_over_once() -> None:
    aliases = {"a:A1": "anon:A1"}
    found = resolve(
        {"anonymous_id": "A1", "user_id": "u1", "email": "Ann@Example.com", "type": "identify"},
        aliases.get,
    )
    assert found.lead_id == "u1"
    assert found.handover_from == "anon:A1"
    assert found.alias_writes == {"a:A1": "u1", "h:a:A1": "anon:A1"}
    assert found.email_alias == ("Ann@Example.com", "u1")
    aliases.update(found.alias_writes)
    again = resolve({"anonymous_id": "A1", "type": "web.page_view"}, aliases.get)
    assert again.lead_id == "u1" and again.handover_from is None
    assert again.via == "anon:A1"  # later events queue behind the hand-over


def test_cookie_of_another_known_lead_is_a_conflict() -> None:
    found = resolve({"anonymous_id": "A1", "user_id": "u2"}, {"a:A1": "u1"}.get)
    assert found.lead_id == "u2"
    assert found.conflict_with == "u1"
    assert found.alias_writes == {}  # the cookie's history stays with u1


def test_user_id_alone_is_the_lead() -> None:
    assert resolve({"user_id": "u9", "type": "sales.accepted"}, {}.get).lead_id == "u9"


def test_email_only_events_follow_the_email_alias() -> None:
    email = "bob@corp.example"
    visitor = visitor_lead_id("e", email)
    assert visitor.startswith("email:") and email not in visitor  # no email in lead ids
    assert resolve({"email": email}, {}.get).lead_id == visitor
    assert resolve({"email": email.upper()}, {alias_key("e", email): "u3"}.get).lead_id == "u3"


def test_alias_control_claims_an_email_visitor() -> None:
    email = "bob@corp.example"
    aliases = {alias_key("e", email): visitor_lead_id("e", email)}
    found = resolve({"type": "identity.alias", "email": email, "lead_id": "u3"}, aliases.get)
    assert found.lead_id == "u3"
    assert found.handover_from == visitor_lead_id("e", email)


def test_event_without_identity_is_refused() -> None:
    with pytest.raises(ValueError, match="no anonymous_id, user_id or email"):
        resolve({"type": "web.page_view"}, {}.get)
