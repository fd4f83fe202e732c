"""Request size limits: an over-long request target gets 414, an over-large body 413."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from cloud.problems import problem_response


class _BodyTooLarge(HTTPException):
    """Raised from the body reader, so that the app answers it as a 413 problem."""

    def __init__(self, limit: int):
        super().__init__(413, f"the limit is {limit} bytes")


class RequestLimitMiddleware:
    """ASGI middleware bounding the request target (path + query) and the body."""

    def __init__(self, app, max_target_bytes: int, max_body_bytes: int):
        self.app, self.max_target, self.max_body = app, max_target_bytes, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if target > self.max_target:
            response = problem_response(
                414, "Request target too long",
                f"path and query string are {target} bytes; the limit is {self.max_target}", scope["path"])
            return await response(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await self._too_large(scope, receive, send)
        received = 0
        started = False

        async def bounded_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large(scope, receive, send)

    async def _too_large(self, scope, receive, send):
        response = problem_response(413, "Request body too large",
                                    f"the limit is {self.max_body} bytes", scope["path"])
        await response(scope, receive, send)
