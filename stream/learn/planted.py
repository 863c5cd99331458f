"""Journeys with a planted truth: a history whose right answer is known, to test `learn` on.

Every lead is an identified B2B researcher (a decision maker's or a manager's profile: grade A
or B). Early in its journey it may download an e-book (half of them) and may attend a webinar
(45 %), each drawn independently; then it researches the product and pricing as much or as
little as its own draws say. A week or so later sales answers every lead of the campaign, and
the answer depends on the webinar alone: accepted with probability 0.7 after a webinar, 0.12
without, whatever the e-book. So in this history `webinar.attended` predicts acceptance and
`content.ebook_download` (8 points in the default model) does not: a model learned from it
should raise the first and lower the second (`python -m stream.reports.history --planted-truth`).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from stream.simulate import personas as p
from stream.simulate.journeys import BLOG, PRODUCT
from stream.simulate.messages import Journey, Trail

PREDICTIVE = "webinar.attended"
NOT_PREDICTIVE = "content.ebook_download"
ACCEPT_WITH = 0.7
ACCEPT_WITHOUT = 0.12


def researcher(tr: Trail, rng: random.Random) -> None:
    tr.day(0)
    tr.page("/")
    for slug in rng.sample(BLOG, rng.randint(1, 3)):
        tr.page(f"/blog/{slug}")
    tr.day(1)
    tr.identify(tr.journey.traits)
    if rng.random() < 0.5:  # the planted noise
        tr.track("Ebook Downloaded", {"asset_id": "ebook-lead-scoring-guide"})
    attended = rng.random() < 0.45  # the planted signal
    webinar = "webinar-scoring-live"
    if attended or rng.random() < 0.4:
        tr.day(2)
        tr.track("Webinar Registered", {"webinar_id": webinar})
    if attended:
        tr.day(3)
        tr.track("Webinar Attended", {"webinar_id": webinar})
    tr.day(4)
    for path in rng.sample(PRODUCT, rng.randint(1, 3)):
        tr.page(path)
    if rng.random() < 0.6:
        tr.day(rng.randint(5, 6))  # a second day of research: the streak
        for path in rng.sample(PRODUCT, rng.randint(1, 2)):
            tr.page(path)
    if rng.random() < 0.5:
        tr.track("Case Study Downloaded", {"asset_id": rng.choice(("cs-fintech", "cs-health"))})
    if rng.random() < 0.6:
        tr.day(7)
        tr.page("/pricing")
    tr.day(rng.randint(10, 13))  # sales answers every lead of the campaign
    if rng.random() < (ACCEPT_WITH if attended else ACCEPT_WITHOUT):
        tr.crm("sales.accepted", {"crm": "simulated"}, p.bant(rng, qualified=True))
    else:
        tr.crm("sales.rejected", {"reason": "not_ready"})


def build_planted(leads: int, seed: int, start: datetime) -> list[Journey]:
    """`leads` researcher journeys; same arguments, same output (seeded per lead)."""
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    journeys = []
    for index in range(leads):
        rng = random.Random(f"ls-planted/{seed}/{index}")
        persona = p.DECISION_MAKER if rng.random() < 0.5 else p.MANAGER
        traits = p.profile(persona, rng, index)
        anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        journey = Journey(f"planted-{seed}-{index:06d}", persona, anonymous_id, traits)
        researcher(Trail(seed, journey, start + timedelta(days=rng.uniform(0, 21)), rng), rng)
        journeys.append(journey)
    return journeys
