"""factory-boy factories. Rows that carry money are created through the services (see
tests/helpers.py), never by factories, so the journal and the history are always real."""

import factory
from django.contrib.auth import get_user_model

from ledger.models import Membership, Patient, Payer, Practice


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")
    is_staff = True


class PracticeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Practice

    name = factory.Sequence(lambda n: f"Practice {n}")
    us_state = "TX"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    practice = factory.SubFactory(PracticeFactory)
    role = Membership.Role.BILLING


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    practice = factory.SubFactory(PracticeFactory)
    account_number = factory.Sequence(lambda n: f"A{n:05d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")


class PayerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payer

    practice = factory.SubFactory(PracticeFactory)
    name = factory.Sequence(lambda n: f"Payer {n}")
    payer_type = Payer.Type.COMMERCIAL
