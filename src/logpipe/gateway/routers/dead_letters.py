"""Dead letters: list them by reason with their raw records (read role), and replay them through the
intake after a rule or schema change, or with corrected text (admin role). ``processing.dead_letters``
says what a replay guarantees."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from logpipe.gateway.answers import in_thread
from logpipe.gateway.body import BodyTooLarge, read_body
from logpipe.gateway.deps import DeadLettersDep
from logpipe.gateway.security import ADMIN, READ
from logpipe.processing.dead_letters import MAX_PER_REPLAY, ReplayRefused
from logpipe.transport.intake import Overloaded, ShuttingDown

router = APIRouter(prefix="/api/dead-letters", tags=["dead letters"])
MAX_REPLAY_BODY_BYTES = 8 << 20
DEAD_LETTER_ID = r"^\d{1,20}$"
FROM = Query(alias="from", description="Epoch ms; default: all the store keeps.")
TO = Query(alias="to", description="Epoch ms; default: all the store keeps.")


class ReplayRequest(BaseModel):
    """``ids`` (at most 10,000), or ``reason`` for all the open dead letters of one reason in the window;
    ``fixes`` maps an id of ``ids`` to the corrected text to replay in place of its raw record."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    ids: list[Annotated[str, Field(pattern=DEAD_LETTER_ID)]] = Field(default_factory=list, max_length=MAX_PER_REPLAY)
    reason: str = Field("", max_length=10_000)
    fixes: dict[Annotated[str, Field(pattern=DEAD_LETTER_ID)], str] = Field(default_factory=dict)
    start_ms: int | None = Field(None, alias="from")
    end_ms: int | None = Field(None, alias="to")


async def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """A read or a replay in a worker thread, its failures as answers: the request's own mistakes are
    a 400, a full pipeline or a busy store a 429, a store or intake that fails a 503."""
    try:
        return await in_thread(lambda: function(*args, **kwargs))
    except ReplayRefused as exc:
        raise HTTPException(400, str(exc)) from None
    except Overloaded as exc:
        raise HTTPException(429, f"{exc}; retry later (what was not sent stays open)",
                            headers={"Retry-After": "1"}) from None
    except ShuttingDown:
        raise HTTPException(503, "shutting down; what was not stored stays open",
                            headers={"Retry-After": "5"}) from None
    except TimeoutError:
        raise HTTPException(503, "not durable in time; the next replay finishes it",
                            headers={"Retry-After": "5"}) from None


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/reasons", dependencies=[READ], summary="Dead letters by reason")
async def reasons(dead_letters: DeadLettersDep, start_ms: Annotated[int | None, FROM] = None,
                  end_ms: Annotated[int | None, TO] = None) -> Response:
    """Each reason with its dead letters and how many of them are open (never replayed)."""
    return _json(await _call(dead_letters.reasons, start_ms, end_ms))


@router.get("", dependencies=[READ], summary="Dead letters, newest first")
async def list_dead_letters(
    dead_letters: DeadLettersDep,
    reason: Annotated[str, Query(max_length=10_000)] = "",
    state: Annotated[str, Query(description="all, open, pending, stored or failed")] = "all",
    start_ms: Annotated[int | None, FROM] = None, end_ms: Annotated[int | None, TO] = None,
    before_ts: int = 0, before_id: Annotated[str, Query(pattern=DEAD_LETTER_ID)] = "0",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Each with its raw record, its copies (rows alike in every column) and what its replay did;
    ``next`` is the cursor of the following page."""
    return _json(await _call(dead_letters.page, reason, state, start_ms, end_ms, before_ts, int(before_id), limit))


@router.post("/replay", dependencies=[ADMIN], summary="Replay dead letters through the intake",
             responses={400: {"description": "Names nothing, or a correction that is not one record"},
                        429: {"description": "The pipeline is full: what was not sent stays open"},
                        503: {"description": "Not durable in time, or shutting down: the next replay finishes it"}})
async def replay(request: Request, dead_letters: DeadLettersDep) -> Response:
    """Body: ``{"ids": [...]}`` or ``{"reason": "..."}``, with optional ``fixes`` ({id: corrected
    text}) and a window (``from``, ``to``). Answers once the records are stored or dead-lettered again:
    ``stored`` and ``failed`` count dead letters, ``errors`` gives each failed one's new reason,
    ``unsent`` those left open (empty text or line breaks, to correct), and ``not_open`` the ids that
    were replayed before (never twice) or do not exist."""
    try:
        body = await read_body(request, MAX_REPLAY_BODY_BYTES)
        asked = ReplayRequest.model_validate_json(body or b"{}")
    except BodyTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False, include_input=False)) from None
    outcome = await _call(dead_letters.replay, [int(i) for i in asked.ids], asked.reason,
                          {int(k): v for k, v in asked.fixes.items()}, asked.start_ms, asked.end_ms)
    return _json(outcome.as_dict())
