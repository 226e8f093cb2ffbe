"""The claims the test provider sends: the standard profile ones and `groups` (the user's
Django groups). A user in the group `provider-omits-sub` gets an ID token without `sub`, as
from a broken provider."""

from oauth2_provider.oauth2_validators import OAuth2Validator

OMIT_SUB_GROUP = "provider-omits-sub"


class ClaimsValidator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "groups"}

    def get_additional_claims(self, request):
        user = request.user
        return {
            "preferred_username": user.username,
            "email": user.email,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        if request.user.groups.filter(name=OMIT_SUB_GROUP).exists():
            claims.pop("sub")
        return claims, expiration_time
