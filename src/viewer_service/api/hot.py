"""ASGI middleware: the hot routes (view writes and reads, assessment submits, lms state updates)
go straight to their endpoint by a dict lookup on the path. Starlette's router tries the routes
one by one, and FastAPI's handler solves the endpoint's dependencies; these endpoints take the
Request alone and return a Response, so both steps can be skipped (measured: docs/benchmarks.md,
issue 17). Exceptions take the same handlers as on the normal route (Starlette's own wrapper),
and anything they do not handle goes on to the middleware outside this one."""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.requests import Request

HOT = {
    ("POST", "/v1/view/start"), ("POST", "/v1/view/update"), ("POST", "/v1/view/end"), ("POST", "/v1/view/read"),
    ("POST", "/v1/assessment/submit"), ("PATCH", "/v1/content/state/update"),
}


class HotRoutes:
    def __init__(self, app):
        self.app = app
        self._routes: dict | None = None
        self._handlers = None

    def _build(self, fastapi_app) -> None:
        routes = {}
        for route in fastapi_app.router.routes:
            if not isinstance(route, APIRoute) or route.dependencies:
                continue
            d = route.dependant
            simple = d.request_param_name and not (d.path_params or d.query_params or d.header_params
                                                    or d.cookie_params or d.body_params or d.dependencies)
            for method in route.methods:
                if (method, route.path) in HOT and simple:
                    routes[(method, route.path)] = route
        # The handlers Starlette's ExceptionMiddleware would use (500/Exception belong further out).
        handlers = {k: v for k, v in fastapi_app.exception_handlers.items() if k not in (500, Exception)}
        em = ExceptionMiddleware(self.app, handlers=handlers)
        self._handlers = (em._exception_handlers, em._status_handlers)
        self._routes = routes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not scope.get("root_path"):
            if self._routes is None:
                self._build(scope["app"])
            route = self._routes.get((scope["method"], scope["path"]))
            if route is not None:
                scope["route"] = route  # the template the metrics and the access line name
                scope["endpoint"] = route.endpoint
                scope["starlette.exception_handlers"] = self._handlers
                request = Request(scope, receive, send)
                endpoint = route.endpoint

                async def call(scope, receive, send):
                    response = await endpoint(request)
                    await response(scope, receive, send)

                return await wrap_app_handling_exceptions(call, request)(scope, receive, send)
        return await self.app(scope, receive, send)
