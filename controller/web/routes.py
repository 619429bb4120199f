"""The web view's routes on the API's server, under /lab: the pages, the login link, the live
feed, JSON snapshots and the actions. Pages and the feed need the session cookie; the JSON
routes also take an API bearer token (programs). Actions from the page also need the CSRF
header. Every action calls the use-case function the CLI and the API call."""
from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from controller.api import bodies, responses, tokens
from controller.api.context import ApiContext
from controller.api.router import Router
from controller.api.scope import resource_id
from controller.api.vmss_routes import check_succeeded
from controller.core.errors import LabError, ModelError
from controller.model.instance import resolve_ids
from controller.ops import commands, views
from controller.ops.lab import Lab
from controller.ops.rolling import start_upgrade
from controller.state.health import HealthStore
from controller.state.upgrades import UpgradeStore
from controller.web import session, snapshot
from controller.web.feed import Feed

HERE = Path(__file__).resolve().parent
STATIC = {p.name: p for p in (HERE / "static").iterdir() if p.suffix in (".js", ".css", ".svg")}
EARLY = 1.0  # seconds an action waits for its operation to be refused (bad input, a busy instance)
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
PAGES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
# style-src-attr: the timeline's bars are placed by style attributes (no <style> element, no script)
SECURITY = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                      "style-src-attr 'unsafe-inline'; img-src 'self'; connect-src 'self'; "
                                      "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def open_route(handler):
    """Not behind the API's bearer token and api-version: the web view checks its own session."""
    handler.open_route = True
    return handler


def _page(template: str, status: int = 200, **values) -> web.Response:
    return web.Response(status=status, text=PAGES.get_template(template).render(**values), content_type="text/html",
                        headers=SECURITY)


def register(router: Router, ctx: ApiContext) -> None:
    paths = ctx.paths
    states = ctx.power_states or snapshot.libvirt_states

    def set_view(lab: Lab, name: str) -> dict:
        view = snapshot.set_view(lab, name, states)
        rid = resource_id(lab.models.get(name))
        view["operations"] = [{**op.to_json(), "kind": op.kind} for op in list(ctx.ops.items.values())
                              if op.resource.lower() == rid.lower()][-10:]
        return view

    async def render(topic: str) -> dict:
        if topic == "lab":
            return await ctx.read(snapshot.lab_view)
        return await ctx.read(set_view, topic.removeprefix("set:"))

    def watch(topic: str) -> None:  # a viewed set's health is polled by the controller while viewed
        if topic.startswith("set:") and ctx.controller is not None and ctx.controller_loop is not None:
            ctx.controller_loop.call_soon_threadsafe(ctx.controller.watch, topic.removeprefix("set:"))

    feed = Feed(render, lambda: ctx.cache.stamp() if ctx.cache else None, watch)
    ctx.on_shutdown.append(feed.close)

    def viewer(request: web.Request, action: bool = False) -> dict:
        """The session (cookie, with the CSRF header for actions) or an API bearer token."""
        if "Authorization" in request.headers and session.COOKIE not in request.cookies:
            return tokens.verify(paths, tokens.bearer(request.headers["Authorization"]))
        claims = session.session(paths, request.cookies.get(session.COOKIE))
        if action:
            session.check_csrf(paths, claims, request.headers.get(session.CSRF_HEADER))
        return claims

    async def page(request: web.Request, kind: str, name: str | None = None) -> web.Response:
        try:
            claims = viewer(request)
        except tokens.Unauthorized as exc:
            return _page("login.html.j2", 401, reason=exc.reason)
        try:
            data = await render("lab" if name is None else f"set:{name}")
        except LabError as exc:
            return _page("error.html.j2", exc.status, error=exc)
        if name is not None:
            watch(f"set:{name}")
        return _page("page.html.j2", kind=kind, name=name, data=data, csrf=session.csrf_token(paths, claims))

    @open_route
    async def home(request: web.Request, p: dict[str, str]) -> web.Response:
        return await page(request, "lab")

    @open_route
    async def scale_set(request: web.Request, p: dict[str, str]) -> web.Response:
        return await page(request, "set", p["name"])

    @open_route
    async def root(request: web.Request, p: dict[str, str]) -> web.Response:
        return web.Response(status=303, headers={"Location": "/lab/", **SECURITY})

    @open_route
    async def login(request: web.Request, p: dict[str, str]) -> web.Response:
        try:
            cookie = await asyncio.get_running_loop().run_in_executor(
                ctx.readers, session.redeem, paths, request.query.get("ticket", ""))
        except tokens.Unauthorized as exc:
            return _page("login.html.j2", 401, reason=exc.reason)
        resp = web.Response(status=303, headers={"Location": "/lab/", **SECURITY})
        resp.set_cookie(session.COOKIE, cookie, max_age=int(session.SESSION_TTL), path="/lab", secure=True,
                        httponly=True, samesite="Lax")
        return resp

    @open_route
    async def events(request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        viewer(request)
        name = request.query.get("scaleSet")
        if name is not None:  # 404 for a set that does not exist; the stored name otherwise
            name = (await ctx.read(lambda lab: lab.models.get(name))).name
        return await feed.stream(request, "lab" if name is None else f"set:{name}")

    @open_route
    async def static(request: web.Request, p: dict[str, str]) -> web.Response:
        path = STATIC.get(p["file"])
        if path is None:
            raise ModelError("path", f"no asset '{p['file'][:80]}'", "NotFound")
        return web.Response(body=path.read_bytes(), content_type=TYPES[path.suffix],
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    @open_route
    async def lab_json(request: web.Request, p: dict[str, str]) -> web.Response:
        viewer(request)
        return responses.body(await render("lab"))

    @open_route
    async def set_json(request: web.Request, p: dict[str, str]) -> web.Response:
        viewer(request)
        return responses.body(await render(f"set:{p['name']}"))

    @open_route
    async def instance_json(request: web.Request, p: dict[str, str]) -> web.Response:
        viewer(request)

        def view(lab: Lab) -> dict:
            ss = lab.models.get(p["name"])
            inst = resolve_ids(lab.instances.list(ss.name), [p["iid"]], "instanceId")[0]
            health = HealthStore(lab.db).get(ss.name).get(inst.instance_id)
            return views.instance_view(ss, inst, states(lab, [inst.domain]).get(inst.domain), views.vm_health(health))
        return responses.body(await ctx.read(view))

    def action(fn):
        @open_route
        async def handler(request: web.Request, p: dict[str, str]) -> web.Response:
            viewer(request, action=True)
            body = await bodies.read(request, required=False)
            if body is not None and not isinstance(body, dict):
                raise ModelError("body", "must be a JSON object")
            return responses.body(await fn(p, body or {}), 202)
        return handler

    async def operation(p: dict[str, str], kind: str, work) -> dict:
        ss = await ctx.read(lambda lab: lab.models.get(p["name"]))

        async def run() -> None:
            check_succeeded(await ctx.work(work, ss.name))
        op = ctx.ops.start(kind, resource_id(ss), ss.location, run())
        await asyncio.wait([op.task], timeout=EARLY)  # type: ignore[list-item]
        if op.status == "Failed" and op.error:  # refused before any VM work: the answer says why
            target, message = op.error.get("target") or "", op.error["message"]
            raise LabError(target, message.removeprefix(f"{target}: ") if target else message, op.error["code"])
        return {"operation": {**op.to_json(), "kind": kind}}

    async def start(p: dict[str, str], body: dict) -> dict:
        if ctx.controller is None:
            raise ModelError("controller", "rolling upgrades from the web view need `scaleset controller`",
                             "OperationNotAllowed")
        up = await ctx.read(lambda lab: start_upgrade(lab, lab.models.get(p["name"]), "User"))
        ctx.drive(up.scale_set, up)
        return {"rollingUpgrade": {"id": up.id, "targetVersion": up.target["version"], "status": up.status}}

    async def cancel(p: dict[str, str], body: dict) -> dict:
        up = await ctx.read(lambda lab: UpgradeStore(lab.db).request_cancel(lab.models.get(p["name"]).name))
        return {"rollingUpgrade": {"id": up.id, "cancelRequested": True}}

    async def upgrade_domain(p: dict[str, str], body: dict) -> dict:
        ud = p["ud"]
        if not (ud.isdecimal() and int(ud) < snapshot.UPDATE_DOMAINS):
            raise ModelError("updateDomain", f"'{ud[:20]}' is not an update domain (0..{snapshot.UPDATE_DOMAINS - 1})")
        return await operation(p, "manualupgrade", lambda lab, name: commands.update_instances(lab, name, None, int(ud)))

    async def reimage(p: dict[str, str], body: dict) -> dict:
        await ctx.read(lambda lab: resolve_ids(lab.instances.list(lab.models.get(p["name"]).name), [p["iid"]],
                                               "instanceId"))
        return await operation(p, "reimage", lambda lab, name: commands.reimage(lab, name, [p["iid"]], on_instance=True))

    async def exclude(p: dict[str, str], body: dict) -> dict:
        value = body.get("excludeFromLatest")
        if not isinstance(value, bool):
            raise ModelError("excludeFromLatest", "must be true or false")
        iv = await ctx.read(lambda lab: lab.gallery.update(p["publisher"], p["offer"], p["sku"], p["version"],
                                                           exclude_from_latest=value))
        return {"image": iv.to_json()}

    router.add("GET", "", root)
    router.add("GET", "lab", home)
    router.add("GET", "lab/scalesets/{name}", scale_set)
    router.add("GET", "lab/login", login)
    router.add("GET", "lab/events", events)
    router.add("GET", "lab/static/{file}", static)
    router.add("GET", "lab/api/lab", lab_json)
    router.add("GET", "lab/api/scalesets/{name}", set_json)
    router.add("GET", "lab/api/scalesets/{name}/instances/{iid}", instance_json)
    router.add("POST", "lab/api/scalesets/{name}/rollingUpgrade/start", action(start))
    router.add("POST", "lab/api/scalesets/{name}/rollingUpgrade/cancel", action(cancel))
    router.add("POST", "lab/api/scalesets/{name}/updateDomains/{ud}/upgrade", action(upgrade_domain))
    router.add("POST", "lab/api/scalesets/{name}/instances/{iid}/reimage", action(reimage))
    router.add("POST", "lab/api/images/{publisher}/{offer}/{sku}/{version}/excludeFromLatest", action(exclude))
