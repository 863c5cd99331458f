"""The pure scoring engine: events and a model in, lead state and stage transitions out."""

from stream.scoring.account import (
    AccountState,
    AccountUpdate,
    ContactUpdate,
    account_engagement,
    contact_update,
    is_mqa,
    update_account,
)
from stream.scoring.engine import (
    Outcome,
    apply,
    apply_joining,
    catch_up,
    merge_states,
    next_tick_at,
    tick,
)
from stream.scoring.events import Event, EventError
from stream.scoring.explain import LedgerEntry, Transition, snapshot
from stream.scoring.model import Model, ModelError, default_model, load_model
from stream.scoring.state import LeadState, StateDecodeError, new_state

__all__ = [
    "AccountState",
    "AccountUpdate",
    "ContactUpdate",
    "Event",
    "EventError",
    "LeadState",
    "LedgerEntry",
    "Model",
    "ModelError",
    "Outcome",
    "StateDecodeError",
    "Transition",
    "account_engagement",
    "apply",
    "apply_joining",
    "catch_up",
    "contact_update",
    "default_model",
    "is_mqa",
    "load_model",
    "merge_states",
    "new_state",
    "next_tick_at",
    "snapshot",
    "tick",
    "update_account",
]
