"""The ASGI app: the API's routes onto the handlers, the batch processor in the lifespan, and the
last line of defence that turns any bug into the API's 500 envelope."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .handlers import batches, count_tokens, introspection, messages, models, rate_limits
from .handlers.common import Handler, endpoint, exchange_for, internal_error
from .stream import DroppedConnection

if TYPE_CHECKING:
    from .simulator import Simulator

__all__ = ["create_app"]


def create_app(sim: "Simulator") -> Starlette:
    """The ASGI app serving ``sim`` with the API's paths."""

    def api(name: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return endpoint(sim, name, handler)

    def mock(handler: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        return functools.partial(handler, sim)

    batch = "/v1/messages/batches"
    org_rl = "/v1/organizations/rate_limits"
    ws_rl = "/v1/organizations/workspaces/{workspace_id:str}/rate_limits"
    routes = [
        Route("/v1/messages", api("/v1/messages", messages.messages), methods=["POST"]),
        Route(
            "/v1/messages/count_tokens", api("/v1/messages/count_tokens", count_tokens.count_tokens), methods=["POST"]
        ),
        Route(batch, api(batch, batches.create_batch), methods=["POST"]),
        Route(batch, api(batch, batches.list_batches), methods=["GET"]),
        Route(batch + "/{batch_id:str}", api(batch + "/{id}", batches.get_batch), methods=["GET"]),
        Route(batch + "/{batch_id:str}", api(batch + "/{id}", batches.delete_batch), methods=["DELETE"]),
        Route(batch + "/{batch_id:str}/cancel", api(batch + "/{id}/cancel", batches.cancel_batch), methods=["POST"]),
        Route(batch + "/{batch_id:str}/results", api(batch + "/{id}/results", batches.batch_results), methods=["GET"]),
        Route("/v1/models", api("/v1/models", models.list_models), methods=["GET"]),
        Route("/v1/models/{model_id:str}", api("/v1/models/{model_id}", models.get_model), methods=["GET"]),
        Route(org_rl, api(org_rl, rate_limits.list_org_rate_limits), methods=["GET"]),
        Route(ws_rl, api(ws_rl.replace(":str", ""), rate_limits.list_workspace_rate_limits), methods=["GET"]),
        Route("/mock/requests", mock(introspection.mock_requests), methods=["GET"]),
        Route("/mock/usage", mock(introspection.mock_usage), methods=["GET"]),
        Route("/mock/health", mock(introspection.mock_health), methods=["GET"]),
        Route("/mock/reset", mock(introspection.mock_reset), methods=["POST"]),
        Route("/mock/scenario", mock(introspection.mock_scenario), methods=["GET", "POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Batches are processed in the background; a restarted server resumes unfinished ones.
        sim.loop = asyncio.get_running_loop()
        task = asyncio.create_task(sim.run_batches())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = Starlette(routes=routes, lifespan=lifespan)

    async def fallback(request: Request, exc: Exception) -> Response:
        return await introspection.not_found(sim, request)

    async def crashed(request: Request, exc: Exception) -> Response:
        # Last line of defence: a bug is a 500 api_error envelope with a log line, never a bare crash.
        if isinstance(exc, DroppedConnection):
            raise exc  # an injected drop: let the server abort the connection
        return internal_error(sim, exchange_for(sim, request, request.url.path), exc)

    app.add_exception_handler(404, fallback)
    app.add_exception_handler(405, fallback)
    app.add_exception_handler(Exception, crashed)
    app.state.simulator = sim
    return app
