"""The portal's account forms: sign in, the one-time sign-in code, the password-reset request.
They only parse; the rules are in portal.accounts and the services. Every field with an error
gets aria-invalid and aria-describedby pointing at its error list (`<id>-errors` in the templates)."""

from django import forms
from django.contrib.auth.forms import SetPasswordForm


class DescribedErrorsMixin:
    """Ties each field's errors to its input for screen readers (WCAG 2.1 AA 3.3.1)."""

    def add_error(self, field, error):
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["aria-invalid"] = "true"
                auto_id = self[name].auto_id
                help_id = f" {auto_id}_helptext" if self.fields[name].help_text else ""  # the help text's id
                attrs["aria-describedby"] = f"{auto_id}-errors{help_id}"


class SignInForm(DescribedErrorsMixin, forms.Form):
    email = forms.EmailField(label="E-mail address", max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(label="Password", strip=False, max_length=4096,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    next = forms.CharField(required=False, widget=forms.HiddenInput)


class CodeForm(DescribedErrorsMixin, forms.Form):
    code = forms.CharField(label="Sign-in code", max_length=12, required=False,
                           help_text="The 6 digits in the e-mail we just sent you.",
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                         "autofocus": True}))
    next = forms.CharField(required=False, widget=forms.HiddenInput)


class ResetForm(DescribedErrorsMixin, forms.Form):
    email = forms.EmailField(label="E-mail address", max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))


class NewPasswordForm(DescribedErrorsMixin, SetPasswordForm):
    """Django's SetPasswordForm (the password validators of settings) with errors tied to fields."""
