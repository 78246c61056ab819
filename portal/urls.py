"""The portal's routes under /portal/ (docs/portal.md): accounts (views_account), the patient's
pages and documents (views_pages), the money forms and guest pay (views_money)."""

from django.urls import path

from portal import views_account, views_money, views_pages
from portal.views_common import brand_css

app_name = "portal"

urlpatterns = [
    path("brand/<int:practice_id>.css", brand_css, name="brand"),
    *views_account.urlpatterns,
    *views_pages.urlpatterns,
    *views_money.urlpatterns,
]
