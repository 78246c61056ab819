"""Staff roles through the API: who works for the token's practice, and granting, changing and
revoking roles (manager tokens). The rule of who may is the services' (ledger.access.roles_refusal,
the same as the admin's): managers of the practice, never their own role."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from api import serializers as s
from api.base import SettleViewSet
from api.fields import Reason, TextField
from api.permissions import HasApiToken, IsManagerToken
from ledger import services
from ledger.errors import NotFound, SettleError
from ledger.models import Membership


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ("id", "user", "username", "role")
        read_only_fields = fields


class MembershipGrantSerializer(serializers.Serializer):
    username = TextField(max_length=150, help_text="The staff user (an administrator makes staff users).")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    reason = Reason(required=True)


@extend_schema_view(list=extend_schema(summary="List the practice's staff and their roles"),
                    retrieve=extend_schema(summary="Get one staff membership"))
class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SettleViewSet):
    serializer_class = MembershipSerializer

    def get_queryset(self):
        return Membership.objects.filter(practice_id=self.practice_id).select_related("user")

    def get_permissions(self):
        if getattr(self, "action", None) in ("create", "revoke"):
            return [HasApiToken(), IsManagerToken()]
        return [HasApiToken()]

    @extend_schema(summary="Grant or change a staff role (manager token)",
                   description="Gives the staff user `username` the `role` in the token's practice, or changes it. "
                               "Managers of the practice may; nobody changes their own role (a 403). 201 when the "
                               "membership is new, 200 when it existed.",
                   request=MembershipGrantSerializer, responses={200: MembershipSerializer, 201: MembershipSerializer})
    def create(self, request):
        data = self.input(MembershipGrantSerializer)
        user = get_user_model().objects.filter(username=data["username"]).first()
        if user is None:
            raise NotFound(f"unknown user {data['username']}", field="username")
        existed = Membership.objects.filter(user=user, practice_id=self.practice_id).exists()
        try:
            m = services.membership_grant(user_id=user.pk, practice_id=self.practice_id, role=data["role"],
                                          actor=self.actor, reason=data["reason"])
        except SettleError as exc:
            if exc.field == "user":
                exc.field = "username"  # the input's name for the person
            raise
        return Response(MembershipSerializer(m).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke a staff role (manager token)",
                   description="The person no longer works for the practice (their tokens of it stop working). "
                               "Not your own.", request=s.ReasonSerializer, responses={204: None})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        m = self.own(pk)
        data = self.input(s.ReasonSerializer)
        services.membership_revoke(membership_id=m.pk, actor=self.actor, reason=data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)
