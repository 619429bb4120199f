"""What a client needs to sign in and find its subscription: a managed-identity token endpoint
(for `az login --identity`; its path carries a lab token, so only holders of one get more),
the lab's one subscription and tenant, and resource groups (an implicit namespace)."""
from __future__ import annotations

import jwt
from aiohttp import web

from controller.api import responses, tokens
from controller.api.context import ApiContext
from controller.api.router import Router
from controller.api.scope import check_subscription
from controller.model.armid import (
    DEFAULT_RESOURCE_GROUP,
    SUBSCRIPTION_ID,
    TENANT_ID,
    check_group,
    group_of,
    group_path,
)
from controller.ops.lab import Lab

SUBSCRIPTION = {"id": f"/subscriptions/{SUBSCRIPTION_ID}", "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID, "displayName": "scaleset-lab", "state": "Enabled",
                "authorizationSource": "RoleBased",
                "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "Lab",
                                         "spendingLimit": "Off"}}
TENANT = {"id": f"/tenants/{TENANT_ID}", "tenantId": TENANT_ID, "tenantCategory": "Home",
          "displayName": "scaleset-lab", "defaultDomain": "scaleset-lab.local"}


def _group(name: str) -> dict:
    return {"id": group_path(name), "name": name,
            "type": "Microsoft.Resources/resourceGroups", "location": "local",
            "properties": {"provisioningState": "Succeeded"}}


def register(router: Router, ctx: ApiContext) -> None:
    async def token(request: web.Request, p: dict[str, str]) -> web.Response:
        """A token that expires no later than the one in the path (else tokens would renew forever)."""
        claims = tokens.verify(ctx.paths, p["secret"])
        access = tokens.mint(ctx.paths, tokens.DEFAULT_TTL, subject="managed-identity", not_after=int(claims["exp"]))
        issued = jwt.decode(access, options={"verify_signature": False})
        now, exp = issued["iat"], issued["exp"]
        return responses.body({"access_token": access,
                               "expires_in": str(exp - now), "expires_on": str(exp), "not_before": str(now),
                               "ext_expires_in": str(exp - now), "resource": request.query.get("resource", ""),
                               "token_type": "Bearer", "client_id": "scaleset-lab"})
    token.open_route = True  # type: ignore[attr-defined] - checked by its own path token, no api-version

    async def subscriptions(request: web.Request, p: dict[str, str]) -> web.Response:
        return responses.page(request, [SUBSCRIPTION])

    async def subscription(request: web.Request, p: dict[str, str]) -> web.Response:
        check_subscription(p)
        return responses.body(SUBSCRIPTION)

    async def tenants(request: web.Request, p: dict[str, str]) -> web.Response:
        return responses.page(request, [TENANT])

    async def groups(request: web.Request, p: dict[str, str]) -> web.Response:
        check_subscription(p)

        def names(lab: Lab) -> list[str]:
            return sorted({DEFAULT_RESOURCE_GROUP} | {group_of(ss.id) for ss in lab.models.list()}, key=str.lower)
        return responses.page(request, [_group(n) for n in await ctx.read(names)])

    async def one_group(request: web.Request, p: dict[str, str]) -> web.Response:
        check_subscription(p)
        return responses.body(_group(check_group(p["rg"])))

    router.add("GET", "identity/{secret}/metadata/identity/oauth2/token", token)
    router.add("GET", "subscriptions", subscriptions)
    router.add("GET", "subscriptions/{sub}", subscription)
    router.add("GET", "tenants", tenants)
    router.add("GET", "subscriptions/{sub}/resourceGroups", groups)
    router.add("GET", "subscriptions/{sub}/resourceGroups/{rg}", one_group)
    router.add("PUT", "subscriptions/{sub}/resourceGroups/{rg}", one_group)
