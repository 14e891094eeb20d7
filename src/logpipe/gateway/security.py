"""Authentication of every route but ``/ping``: a bearer token, or the cookie the dashboard's login sets.

``GET /?token=<token>`` checks the token, stores it in an HttpOnly, SameSite=Strict cookie and
redirects to ``/``, so the token leaves the address bar and the page's scripts never see it (as a
Jupyter server's ``?token=`` link does).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response

from logpipe.auth.tokens import Identity, Role, TokenRegistry

COOKIE = "logpipe_token"
COOKIE_MAX_AGE_S = 7 * 86_400


def registry_of(request: Request) -> TokenRegistry:
    return request.app.state.tokens


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE)


def caller(request: Request) -> Identity | None:
    return registry_of(request).identify(presented_token(request))


def require(role: Role):
    """A dependency that answers 401 without a valid token and 403 for a token of another role."""

    def dependency(request: Request) -> Identity:
        identity = caller(request)
        if identity is None:
            raise HTTPException(401, "a token is needed: 'Authorization: Bearer <token>' (logpipe up prints "
                                "where its tokens are)", headers={"WWW-Authenticate": 'Bearer realm="logpipe"'})
        if not identity.may(role):
            raise HTTPException(403, f"a token of the {identity.role} role may not do this; it needs {role}")
        return identity

    return Depends(dependency)


def set_login_cookie(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="strict", secure=secure,
                        path="/")


Ingest = Annotated[Identity, require(Role.INGEST)]
Reader = Annotated[Identity, require(Role.READ)]
Admin = Annotated[Identity, require(Role.ADMIN)]
READ = require(Role.READ)
ADMIN = require(Role.ADMIN)
INGEST = require(Role.INGEST)
