"""Every state-machine transition is marked alters_data (ledger/fsm.py), so no template can call one."""

import pytest
from django.apps import apps
from django.template import Context, Template

from tests.factories import PatientFactory

PROJECT_APPS = ("ledger", "credits", "remittances", "adjudication", "api", "backoffice", "portal")


def transitions():
    out = []
    for model in apps.get_models():
        if model._meta.app_label not in PROJECT_APPS or model._meta.proxy:
            continue
        for klass in model.__mro__:
            for name, attr in vars(klass).items():
                if callable(attr) and hasattr(attr, "_django_fsm"):
                    out.append((model, name, attr))
    return out


def test_there_are_transitions_and_every_one_alters_data():
    found = transitions()
    assert len(found) >= 20  # claims, credits, refunds, write-offs, payer credits, approvals, imports
    assert [f"{m.__name__}.{n}" for m, n, a in found if not getattr(a, "alters_data", False)] == []


@pytest.mark.django_db
def test_a_template_cannot_fire_a_transition(world):
    from credits.models import Credit

    credit = Credit(practice=world.practice, patient=PatientFactory(practice=world.practice), source="manual",
                    amount="5.00", on_hand="5.00", state=Credit.State.LOCKED, created_by=world.clerk)
    Template("{{ c.unlock }}{{ c.mark_applied }}").render(Context({"c": credit}))
    assert credit.state == Credit.State.LOCKED
