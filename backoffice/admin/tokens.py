"""API tokens in the admin (issue 9): a staff user makes a token that acts for themselves, with at
most their own role in the practice (`api_token_create(created_by=request.user)`); the token is shown
once, on the page that made it. Tokens are listed per practice (never the hash) and revoked with
an action, by a manager of the practice or the person the token acts for (the rule is the
service's, `api.tokens.may_revoke`). Both ask for a reason, which the token's history keeps with
the user's name (the History button). Integration tokens (no person behind them) are made from the
command line only (`create_api_token` without --created-by). Registered by backoffice/admin/books.py."""

from django import forms
from django.contrib import admin
from django.urls import reverse

from api.models import ApiToken
from api.tokens import api_token_create, api_token_revoke
from backoffice.admin.base import PracticeFilter, ScopedHistoryAdmin, call_service, confirm_with_reason, report
from backoffice.forms import PracticeChoiceMixin, reason_field
from backoffice.views.common import practice_ids
from backoffice.views.patient import render_page, require_member, run_service
from ledger.models import Practice


class ApiTokenAddForm(PracticeChoiceMixin, forms.Form):
    practice = forms.ModelChoiceField(queryset=Practice.objects.none())
    name = forms.CharField(max_length=60, help_text="What uses it, e.g. pm-approvals (a-z, 0-9, '.', '_', '-').")
    role = forms.ChoiceField(choices=ApiToken.Role.choices, initial=ApiToken.Role.BILLING,
                             help_text="At most your own role in the practice. The token acts for you: the history "
                                       "names you, and it never approves what you asked for.")
    reason = reason_field(initial="API token made in the admin")

    def __init__(self, *args, practice_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_practice(list(practice_ids))


@admin.register(ApiToken)
class ApiTokenAdmin(ScopedHistoryAdmin):
    list_display = ("name", "practice", "role", "acts_for", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("role", ("practice", PracticeFilter))
    search_fields = ("name", "prefix", "created_by__username", "user__username")
    list_select_related = ("practice", "user", "created_by")
    ordering = ("-pk",)
    add_fields = ()  # made on the page below (add_view), never by a model form
    actions = ("revoke_selected",)

    @admin.display(description="acts for")
    def acts_for(self, obj):
        return obj.created_by.get_username() if obj.created_by_id else f"{obj.user.get_username()} (integration)"

    def get_fields(self, request, obj=None):
        return [f for f in super().get_fields(request, obj) if f != "key_hash"]  # a hash, but no need to show it

    def add_view(self, request, form_url="", extra_context=None):
        require_member(self, request)
        form = ApiTokenAddForm(request.POST or None, practice_ids=practice_ids(request))
        changelist = reverse("admin:api_apitoken_changelist")
        if request.method == "POST" and form.is_valid():
            made = run_service(form, api_token_create, practice_id=form.cleaned_data["practice"].pk,
                               role=form.cleaned_data["role"], name=form.cleaned_data["name"],
                               created_by=request.user, reason=form.cleaned_data["reason"])
            if made is not None:
                token, raw = made
                # shown on this page only: not a message (kept in the session) and not a redirect
                return render_page(self, request, "admin/settle/form_page.html", title=f"API token {token.name}",
                                   crumbs=[(changelist, "API tokens")], form=None, buttons=[], cancel_url=changelist,
                                   intro="Copy the token into the integration's secret store now: it is shown only "
                                         "this once and settle keeps only its SHA-256.",
                                   summary=[("Token", raw), ("Practice", token.practice.name),
                                            ("Role", token.get_role_display()),
                                            ("Acts for", request.user.get_username())])
        return render_page(self, request, "admin/settle/form_page.html", title="New API token",
                           crumbs=[(changelist, "API tokens")], form=form, cancel_url=changelist,
                           intro="A token for another system to use the REST API (/api/v1/) as you.",
                           buttons=[("_save", "Make the token", "default")])

    @admin.action(description="Revoke selected tokens")
    def revoke_selected(self, request, queryset):
        def perform(reason):
            done, errors = 0, []
            for token in queryset.select_related("practice").order_by("pk"):
                _, error = call_service(api_token_revoke, token_id=token.pk, actor=request.user, reason=reason)
                if error:
                    errors.append(f"{token.name}: {error}")
                else:
                    done += 1
            report(self, request, done=done, what="Revoked", errors=errors)

        return confirm_with_reason(self, request, queryset, action="revoke_selected", title="Revoke API tokens",
                                   question="These tokens will be refused (401) from now on.", perform=perform,
                                   button="Revoke")
