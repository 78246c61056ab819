from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken
from api.tokens import api_token_revoke


class Command(BaseCommand):
    help = "Revoke an API token (refused with 401 from now on), found by its prefix (the part after stl_)."

    def add_arguments(self, parser):
        parser.add_argument("prefix", help="The token's prefix, e.g. 3f9a1c2b7d10 (GET /api/v1/token shows it).")
        parser.add_argument("--reason", default="Revoked by an operator", help="Kept in the token's history.")

    def handle(self, *args, prefix, reason, **options):
        token = ApiToken.objects.filter(prefix=prefix.removeprefix("stl_").split("_")[0]).first()
        if token is None:
            raise CommandError(f"no API token with prefix {prefix}")
        if token.revoked_at is not None:
            self.stdout.write(f"API token '{token.name}' of practice {token.practice_id} was already revoked "
                              f"({token.revoked_at:%Y-%m-%d %H:%M} UTC)")
            return
        api_token_revoke(token_id=token.pk, reason=reason)
        self.stdout.write(f"revoked API token '{token.name}' of practice {token.practice_id}")
