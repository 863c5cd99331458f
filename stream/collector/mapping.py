"""Event-name and URL classification, and profile traits mapped to the scoring model's names."""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from stream.errors import LeadstreamError, SettingsError

# Every type the scoring model knows that a client may send (derived types are the engine's own).
MODEL_TYPES = frozenset(
    {
        "web.page_view",
        "web.product_page_view",
        "web.pricing_view",
        "web.careers_view",
        "email.open",
        "email.click",
        "email.unsubscribe",
        "email.spam_complaint",
        "email.hard_bounce",
        "social.engagement",
        "content.ebook_download",
        "content.case_study_download",
        "webinar.registered",
        "webinar.attended",
        "trial.signup",
        "product.activation",
        "cart.abandoned",
        "sales.demo_requested",
        "meeting.requested",
        "form.contact_sales",
        "chat.sales_request",
        "sales.accepted",
        "sales.rejected",
        "sales.no_decision",
        "opportunity.created",
        "opportunity.won",
        "opportunity.lost",
        "manual.override",
        "profile.update",
    }
)
UNMAPPED = "unmapped"
TRAIT_NAMES = (
    "seniority",
    "buying_role",
    "employees",
    "industry",
    "country",
    "email_type",
    "tech_fit",
    "budget_usd",
    "budget_confirmed",
    "need",
    "timeline_months",
)
SENIORITIES = frozenset(
    {
        "c_level",
        "vp",
        "director",
        "manager",
        "individual_contributor",
        "student",
        "intern",
        "owner",
        "founder",
    }
)
# Title words -> seniority, tried in this order (first hit wins): "Vice President" is a vp
# before "president" makes it c_level; an assistant to the CEO is not the CEO; "Director of
# Student Affairs" is a director, while "Marketing Intern" is an intern.
_TITLE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (level, re.compile(pattern))
    for level, pattern in (
        (
            "individual_contributor",
            r"\b(assistant to|executive assistant|product owner|process owner)\b",
        ),
        ("vp", r"\b(vp|svp|evp|avp|vice[- ]president|vice[- ]chair)\b"),
        ("founder", r"\b(co-?founder|founder|founding partner)\b"),
        (
            "c_level",
            r"\b(chief|ceo|cto|cfo|coo|cmo|cio|ciso|cro|cpo|cdo|president|"
            r"managing director|geschäftsführer\w*)\b",
        ),
        ("owner", r"\b(owner|proprietor|inhaber\w*)\b"),
        ("director", r"\b(director|head of|head|leiter\w*|general manager)\b"),
        ("manager", r"\b(manager|mgr|team lead|supervisor)\b"),
        ("intern", r"\b(intern|internship|trainee|werkstudent|praktikant\w*)\b"),
        ("student", r"\b(student|phd candidate|undergraduate)\b"),
        (
            "individual_contributor",
            r"\b(engineer|developer|analyst|specialist|consultant|associate|coordinator|"
            r"designer|architect|scientist|administrator|representative|accountant|"
            r"marketer|writer|recruiter|sales|technician|officer|staff)\b",
        ),
    )
)
_SNAKE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class EventMapping:
    """The loaded mapping file: page patterns, track names, server-only types, trait tables."""

    pages: tuple[tuple[re.Pattern[str], str], ...]
    page_default: str
    track: MappingABC[str, str]
    server_only: frozenset[str]
    channels: tuple[tuple[str, str], ...]
    free_domains: frozenset[str]
    disposable_domains: frozenset[str]
    industries: MappingABC[str, str]
    countries: MappingABC[str, str]

    def page_type(self, url_or_path: str | None) -> str:
        """The model type of a page or screen view at this URL or path."""
        path = _path_of(url_or_path)
        for pattern, event_type in self.pages:
            if pattern.search(path):
                return event_type
        return self.page_default

    def track_type(self, name: str) -> str | None:
        """The model type of a track event name, or None when it maps to none."""
        key = " ".join(name.split()).lower()
        if key in MODEL_TYPES:
            return key
        return self.track.get(key)

    def channel(self, event_type: str) -> str:
        for prefix, channel in self.channels:
            if event_type == prefix or (prefix.endswith(".") and event_type.startswith(prefix)):
                return channel
        return "web"

    def traits(self, raw: MappingABC[str, Any], email: str | None) -> dict[str, Any]:
        """Profile, fit and BANT traits under the scoring model's names, from Segment traits.

        Only the model's trait names (plus `title`, the input of seniority) are kept: other
        traits are often personal data the scoring does not need.
        """
        out: dict[str, Any] = {}
        title = _text(raw.get("title"))
        if title is not None:
            out["title"] = title[:200]
        seniority = _snake(raw.get("seniority"))
        if seniority in SENIORITIES:
            out["seniority"] = seniority
        elif title is not None:
            inferred = seniority_from_title(title)
            if inferred is not None:
                out["seniority"] = inferred
        role = _snake(raw.get("buying_role", raw.get("role")))
        if role:
            out["buying_role"] = role
        company = raw.get("company")
        company = company if isinstance(company, MappingABC) else {}
        employees = _int(
            _first(raw, "employees", "employee_count", "number_of_employees")
            or _first(company, "employee_count", "employees")
        )
        if employees is not None:
            out["employees"] = employees
        industry = _snake(raw.get("industry") or company.get("industry"))
        if industry:
            out["industry"] = self.industries.get(industry, industry)
        address = raw.get("address")
        address = address if isinstance(address, MappingABC) else {}
        country = self.country(raw.get("country") or address.get("country"))
        if country:
            out["country"] = country
        email_type = _snake(raw.get("email_type"))
        if email_type in {"business", "free", "disposable"}:
            out["email_type"] = email_type
        elif email:
            out["email_type"] = self.email_type(email)
        for name in ("tech_fit", "budget_confirmed", "need"):
            flag = _bool(raw.get(name))
            if flag is not None:
                out[name] = flag
        budget = _number(raw.get("budget_usd", raw.get("budget")))
        if budget is not None:
            out["budget_usd"] = budget
        timeline = _number(raw.get("timeline_months"))
        if timeline is not None:
            out["timeline_months"] = timeline
        return out

    def country(self, value: Any) -> str | None:
        text = _text(value)
        if text is None:
            return None
        if len(text) == 2 and text.isalpha():
            return text.upper()
        return self.countries.get(" ".join(text.lower().split()))

    def email_type(self, email: str) -> str:
        domain = email.rpartition("@")[2].lower()
        if domain in self.disposable_domains:
            return "disposable"
        if domain in self.free_domains:
            return "free"
        return "business"


def seniority_from_title(title: str) -> str | None:
    """Seniority inferred from a job title, or None when the words say nothing."""
    text = title.lower()
    for level, pattern in _TITLE_RULES:
        if pattern.search(text):
            return level
    return None


def load_mapping(path: str | None = None) -> EventMapping:
    """The packaged defaults, with the sections of the file at `path` (when given) replacing them.

    The path comes from settings (LEADSTREAM_MAPPING_PATH); it is never read from the
    environment here.
    """
    text = resources.files("stream.collector").joinpath("mapping.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    if path:
        try:
            override = yaml.safe_load(Path(path).read_text("utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"LEADSTREAM_MAPPING_PATH={path!r}: unreadable: {exc}") from None
        if not isinstance(override, dict):
            raise SettingsError(f"LEADSTREAM_MAPPING_PATH={path!r}: want a YAML mapping")
        data.update(override)
    try:
        return _build(data)
    except (LeadstreamError, KeyError, TypeError, ValueError, re.error) as exc:
        raise SettingsError(f"mapping file {path or 'default'}: {exc}") from None


def _build(data: dict[str, Any]) -> EventMapping:
    allowed = MODEL_TYPES | {UNMAPPED}
    pages = tuple((re.compile(p["pattern"], re.IGNORECASE), p["type"]) for p in data["pages"])
    track = {" ".join(str(k).split()).lower(): str(v) for k, v in data["track"].items()}
    for event_type in [t for _, t in pages] + [data["page_default"], *track.values()]:
        if event_type not in allowed:
            raise ValueError(f"{event_type!r} is not a model type; allowed: {sorted(allowed)}")
    return EventMapping(
        pages=pages,
        page_default=data["page_default"],
        track=track,
        server_only=frozenset(data["server_only"]),
        channels=tuple((str(k), str(v)) for k, v in data["channels"].items()),
        free_domains=frozenset(d.lower() for d in data["free_email_domains"]),
        disposable_domains=frozenset(d.lower() for d in data["disposable_email_domains"]),
        industries={_snake(k) or "": str(v) for k, v in data["industries"].items()},
        countries={
            " ".join(str(k).lower().split()): str(v).upper() for k, v in data["countries"].items()
        },
    )


def _path_of(url_or_path: str | None) -> str:
    if not url_or_path:
        return "/"
    try:
        path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path.split("?")[0]
    except ValueError:
        return "/"
    return path if path.startswith("/") else "/" + path


def _first(data: MappingABC[str, Any], *names: str) -> Any:
    for name in names:
        if data.get(name) is not None:
            return data[name]
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _snake(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    snake = _SNAKE.sub("_", text.lower()).strip("_")
    return snake[:64] or None


def _int(value: Any) -> int | None:
    """An employee count from 250, "250", "1,000", "51-200" (lower bound) or "1001+"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if 0 <= value < 10**9 else None
    if isinstance(value, str):
        match = re.search(r"\d[\d,.]*", value)
        if match:
            digits = match.group().replace(",", "").replace(".", "")
            return int(digits) if len(digits) <= 9 else None
    return None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 10**15:
        return value
    if isinstance(value, float) and abs(value) < 1e15:
        return value
    if isinstance(value, str):
        try:
            number = float(value.replace(",", "").strip())
        except ValueError:
            return None
        if abs(number) < 1e15:
            return int(number) if number.is_integer() else number
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "yes", "y", "1"}:
            return True
        if lowered in {"false", "no", "n", "0"}:
            return False
        return bool(lowered) or None
    if isinstance(value, int | float):
        return bool(value)
    return None
