"""Issue 10, item 3: a check payment needs its check number, in the service (the admin's payment
form used to be the only place that asked). Every path that takes patient money by check:
payment_record, payment_checkout and credit_purchase. The admin's page and the API show the
refusal on `check_number` (tests/backoffice/test_pages.py, tests/api/test_settings_and_roles.py)."""

from datetime import date

import pytest

from credits import services as credit_services
from ledger.errors import InvalidInput
from ledger.models import Payment
from tests.credits.test_invariants import counts

pytestmark = pytest.mark.django_db


def refused_on_check_number(fn, **kwargs):
    before = counts()
    with pytest.raises(InvalidInput) as exc:
        fn(**kwargs)
    assert exc.value.field == "check_number", exc.value.as_dict()
    assert counts() == before, "a refused check payment wrote rows"
    return exc.value


@pytest.mark.parametrize("number", ["", "   ", None])
def test_payment_record_by_check_needs_the_number(world, number):
    pat = world.patient()
    refused_on_check_number(credit_services.payment_record, patient_id=pat.pk, amount="40.00", channel="check",
                            check_number=number, actor=world.clerk, reason="Mailed check")


def test_the_number_is_kept_stripped_and_bounded(world):
    pat = world.patient()
    result = credit_services.payment_record(patient_id=pat.pk, amount="40.00", channel="check",
                                            check_number="  1042 ", actor=world.clerk, reason="Mailed check")
    assert result.payment.check_number == "1042"
    refused_on_check_number(credit_services.payment_record, patient_id=pat.pk, amount="1.00", channel="check",
                            check_number="9" * 41, actor=world.clerk, reason="x")
    # other channels need none
    cash = credit_services.payment_record(patient_id=pat.pk, amount="5.00", channel="cash", actor=world.clerk)
    assert cash.payment.check_number == ""


def test_checkout_by_check_needs_the_number_for_the_rest(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 3))
    world.remit(claim, pr="60.00", paid="140.00")
    refused_on_check_number(credit_services.payment_checkout, patient_id=pat.pk, encounter_ids=[enc.pk],
                            credit_amounts={}, channel="check", check_number="", actor=world.clerk)
    out = credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={},
                                           channel="check", check_number="2001", actor=world.clerk)
    assert (out.payment.channel, out.payment.check_number, out.charged) == ("check", "2001", 60)


def test_buying_credits_by_check_needs_the_number(world):
    pat = world.patient()
    refused_on_check_number(credit_services.credit_purchase, patient_id=pat.pk, amount="50.00", channel="check",
                            actor=world.clerk)
    credit_services.credit_purchase(patient_id=pat.pk, amount="50.00", channel="check", check_number="77",
                                    actor=world.clerk)
    assert Payment.objects.get(patient=pat).check_number == "77"
