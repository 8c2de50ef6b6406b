"""The shapes the gateway answers in: motcua's own, or the national portal's for a source
whose profile says `answer = "portal"` (sources.py). Every route's errors go through
`error`, so an error looks the same whichever route or sender it answers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from service.ingest.gateway.sources import Answer

# The portal's answer: error_code "0" and a message containing "thành công" is success for
# both senders (the .NET one checks both, OpenCPS the code); anything else is a failure.
PORTAL_OK = "0"
PORTAL_FAILED = "-1"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def error(
    status: int,
    code: str,
    sentence: str,
    answer: Answer = Answer.MOTCUA,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A whole-request error: {"error", "sentence"[, "retry_after"]} with a Retry-After
    header when the caller should wait; wrapped in the portal's failure for a portal source."""
    body: dict[str, Any] = {"error": code, "sentence": sentence}
    out_headers = dict(headers or {})
    if retry_after is not None:
        body["retry_after"] = retry_after
        out_headers["Retry-After"] = str(retry_after)
    if answer is Answer.PORTAL:
        body = {"error_code": PORTAL_FAILED, "message": f"Đồng bộ thất bại: {code}", "motcua": body}
    return json_response(status, body, out_headers)


def portal_answer(ours: dict[str, Any]) -> dict[str, Any]:
    """Our per-item answer in the portal's shape; the detail stays under "motcua"."""
    accepted, rejected = ours["accepted"], ours["rejected"]
    if rejected:
        message = f"Đồng bộ thất bại: {rejected} hồ sơ bị từ chối, {accepted} hồ sơ được nhận"
        return {"error_code": PORTAL_FAILED, "message": message, "motcua": ours}
    message = f"Đồng bộ thành công {accepted} hồ sơ"
    return {"error_code": PORTAL_OK, "message": message, "motcua": ours}


def results(ours: dict[str, Any], answer: Answer) -> web.Response:
    """The per-item answer: 200 all accepted, 207 some, 422 none."""
    status = 200 if not ours["rejected"] else 207 if ours["accepted"] else 422
    return json_response(status, portal_answer(ours) if answer is Answer.PORTAL else ours)
