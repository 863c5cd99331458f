"""Mapping: page URLs and track names to model types, channels, traits, override files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream.collector.mapping import load_mapping, seniority_from_title
from stream.errors import SettingsError

MAPPING = load_mapping()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.com/pricing", "web.pricing_view"),
        ("https://acme.com/pricing/?plan=pro", "web.pricing_view"),
        ("/en/pricing", "web.pricing_view"),
        ("https://acme.com/product", "web.product_page_view"),
        ("/products/widget", "web.product_page_view"),
        ("/Features", "web.product_page_view"),
        ("/platform/", "web.product_page_view"),
        ("/productivity-tips", "web.page_view"),
        ("/careers", "web.careers_view"),
        ("https://acme.com/jobs/123", "web.careers_view"),
        ("/blog/why-pricing-matters", "web.page_view"),
        ("/", "web.page_view"),
        (None, "web.page_view"),
        ("", "web.page_view"),
    ],
)
def test_page_type(url: str | None, expected: str) -> None:
    assert MAPPING.page_type(url) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Email Opened", "email.open"),
        ("email opened", "email.open"),
        ("  Email   Link Clicked ", "email.click"),
        ("Unsubscribed", "email.unsubscribe"),
        ("Email Unsubscribed", "email.unsubscribe"),
        ("Email Marked as Spam", "email.spam_complaint"),
        ("Email Bounced", "email.hard_bounce"),
        ("Ebook Downloaded", "content.ebook_download"),
        ("E-book Downloaded", "content.ebook_download"),
        ("Case Study Downloaded", "content.case_study_download"),
        ("Webinar Registered", "webinar.registered"),
        ("Webinar Attended", "webinar.attended"),
        ("Trial Started", "trial.signup"),
        ("Product Activated", "product.activation"),
        ("Cart Abandoned", "cart.abandoned"),
        ("Checkout Abandoned", "cart.abandoned"),
        ("Demo Requested", "sales.demo_requested"),
        ("Meeting Requested", "meeting.requested"),
        ("Contact Sales Form Submitted", "form.contact_sales"),
        ("Sales Chat Requested", "chat.sales_request"),
        ("Social Engagement", "social.engagement"),
        ("Careers Page Viewed", "web.careers_view"),
        ("web.pricing_view", "web.pricing_view"),
        ("sales.accepted", "sales.accepted"),
        ("Sales.Rejected", "sales.rejected"),
        ("journey.research_streak", None),  # derived by the engine, never from clients
        ("identify", None),
        ("Button Clicked", None),
    ],
)
def test_track_type(name: str, expected: str | None) -> None:
    assert MAPPING.track_type(name) == expected


@pytest.mark.parametrize(
    ("event_type", "channel"),
    [
        ("email.open", "email"),
        ("social.engagement", "social"),
        ("sales.accepted", "crm"),
        ("sales.demo_requested", "web"),
        ("sales.accepted", "crm"),
        ("opportunity.won", "crm"),
        ("manual.override", "crm"),
        ("profile.update", "crm"),
        ("trial.signup", "product"),
        ("product.activation", "product"),
        ("web.page_view", "web"),
        ("content.ebook_download", "web"),
        ("meeting.requested", "web"),
        ("identify", "web"),
        ("unmapped", "web"),
    ],
)
def test_channel(event_type: str, channel: str) -> None:
    assert MAPPING.channel(event_type) == channel


@pytest.mark.parametrize(
    ("title", "seniority"),
    [
        ("CEO", "c_level"),
        ("Chief Revenue Officer", "c_level"),
        ("President", "c_level"),
        ("Vice President, Marketing", "vp"),
        ("SVP Sales", "vp"),
        ("Co-Founder", "founder"),
        ("Founder & CEO", "founder"),
        ("Owner", "owner"),
        ("Product Owner", "individual_contributor"),
        ("Executive Assistant to the CEO", "individual_contributor"),
        ("Director of Engineering", "director"),
        ("Head of Growth", "director"),
        ("Director of Student Affairs", "director"),
        ("Marketing Manager", "manager"),
        ("Software Engineer", "individual_contributor"),
        ("Marketing Intern", "intern"),
        ("PhD Student", "student"),
        ("Student", "student"),
        ("Wizard", None),
    ],
)
def test_seniority_from_title(title: str, seniority: str | None) -> None:
    assert seniority_from_title(title) == seniority


def test_traits_mapping() -> None:
    raw: dict[str, Any] = {
        "title": "VP Engineering",
        "role": "Decision Maker",
        "company": {"name": "Acme", "employee_count": "201-1000", "industry": "SaaS"},
        "address": {"country": "Germany"},
        "budget": "25,000",
        "budget_confirmed": "yes",
        "need": "replace our CRM",
        "timeline_months": 3,
        "tech_fit": True,
        "phone": "+49 30 1234",
        "firstName": "Ada",
    }
    assert MAPPING.traits(raw, "ada@acme.io") == {
        "title": "VP Engineering",
        "seniority": "vp",
        "buying_role": "decision_maker",
        "employees": 201,
        "industry": "software",
        "country": "DE",
        "email_type": "business",
        "tech_fit": True,
        "budget_usd": 25000,
        "budget_confirmed": True,
        "need": True,
        "timeline_months": 3,
    }


@pytest.mark.parametrize(
    ("raw", "email", "expected"),
    [
        ({"seniority": "Director", "title": "Student"}, None, {"seniority": "director"}),
        ({"employees": 42}, None, {"employees": 42}),
        ({"employees": "1001+"}, None, {"employees": 1001}),
        ({"employees": True}, None, {}),
        ({"industry": "Financial Services"}, None, {"industry": "financial_services"}),
        ({"country": "us"}, None, {"country": "US"}),
        ({"country": "Atlantis"}, None, {}),
        ({}, "x@gmail.com", {"email_type": "free"}),
        ({}, "x@mailinator.com", {"email_type": "disposable"}),
        ({"email_type": "business"}, "x@gmail.com", {"email_type": "business"}),
        ({"budget_usd": "lots"}, None, {}),
        (
            {"need": False, "budget_confirmed": "no"},
            None,
            {"need": False, "budget_confirmed": False},
        ),
    ],
)
def test_trait_cases(raw: dict[str, Any], email: str | None, expected: dict[str, Any]) -> None:
    traits = MAPPING.traits(raw, email)
    traits.pop("title", None)
    assert traits == expected


def test_override_file_replaces_sections(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "pages:\n  - pattern: '^/preise'\n    type: web.pricing_view\n"
        "track:\n  Whitepaper Downloaded: content.ebook_download\n"
    )
    mapping = load_mapping(str(path))
    assert mapping.page_type("/preise") == "web.pricing_view"
    assert mapping.page_type("/pricing") == "web.page_view"
    assert mapping.track_type("Whitepaper Downloaded") == "content.ebook_download"
    assert mapping.track_type("Ebook Downloaded") is None
    assert mapping.track_type("web.pricing_view") == "web.pricing_view"
    assert mapping.channel("email.open") == "email"  # sections left out keep their defaults


@pytest.mark.parametrize(
    "text",
    [
        "pages:\n  - pattern: '^/x'\n    type: web.nonsense\n",
        "pages:\n  - pattern: '(['\n    type: web.page_view\n",
        "- just a list\n",
        "track: {a: [1, 2]}\n",
    ],
)
def test_bad_override_file_names_the_setting(tmp_path: Path, text: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=r"(?i)mapping"):
        load_mapping(str(path))


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="LEADSTREAM_MAPPING_PATH"):
        load_mapping(str(tmp_path / "nope.yaml"))
