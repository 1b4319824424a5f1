"""The JSON API's plumbing: who is calling (a bearer token, or the session cookie with a CSRF
header), the one error shape, and strict reading of parameters and bodies. No business rule
lives here: permissions are the engine's, this module only turns its refusals into statuses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from flask import current_app, g, request
from flask_login import current_user
from flask_wtf.csrf import same_origin, validate_csrf
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.wrappers import Response
from wtforms import ValidationError

from app.clock import SystemClock
from app.database import db_session
from workflow.clock import WARD_TZ
from workflow.errors import DomainError
from workflow.evaluation import end_of_day
from workflow.models import User
from workflow.tokens import authenticate

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_ID = 2**31 - 1  # ids are 32-bit integers in both databases
ID = f"int(min=1, max={MAX_ID})"  # the URL converter of every id in a path
TEXT_MAX = 20_000  # characters in one free-text field (a reason, findings, a note)

# A DomainError's code decides the status; a code not listed here is an input the engine
# refused for what it says (reason_required, evidence_missing, unknown_product, ...): 422.
STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "invalid_json": 400,
    "invalid_body": 400,
    "invalid_parameter": 400,
    "unauthenticated": 401,
    "invalid_token": 401,
    "not_permitted": 403,
    "self_review": 403,
    "same_reviewer": 403,
    "csrf_failed": 403,
    "not_found": 404,
    "not_a_draw": 404,
    "method_not_allowed": 405,
    "stale_version": 409,
    "invalid_transition": 409,
    "invalid_state": 409,
    "duplicate_assignment": 409,
    "contributions_outstanding": 409,
    "file_too_large": 413,
    "request_too_large": 413,
    "file_type_not_allowed": 415,
    "unsupported_media_type": 415,
}

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Yêu cầu không hợp lệ."),
    401: ("unauthenticated", "Cần xác thực để dùng API."),
    403: ("not_permitted", "Bạn không có quyền thực hiện yêu cầu này."),
    404: ("not_found", "Không có địa chỉ này trong API."),
    405: ("method_not_allowed", "Địa chỉ này không nhận phương thức {method}."),
    406: ("not_acceptable", "API chỉ trả về JSON hoặc tệp tài liệu."),
    409: ("conflict", "Yêu cầu xung đột với trạng thái hiện tại."),
    413: ("request_too_large", "Nội dung gửi lên vượt quá giới hạn {limit} MB."),
    415: ("unsupported_media_type", "Kiểu nội dung gửi lên không được hỗ trợ."),
}


def status_for(code: str) -> int:
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    if code.startswith("already_"):
        return 409
    return 422


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    # Vietnamese stays readable in the body (UTF-8, as JSON requires), not \u-escaped.
    body = json.dumps(data, ensure_ascii=False)
    response: Response = current_app.response_class(
        body, status=status, mimetype="application/json", headers=dict(headers or {})
    )
    return response


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def domain_error_response(error: DomainError) -> Response:
    status = status_for(error.code)
    headers: dict[str, str] = {}
    if status == 401:
        scheme = 'Bearer realm="cchc"'
        if error.code == "invalid_token":
            scheme += ', error="invalid_token"'
        headers["WWW-Authenticate"] = scheme
    return error_response(status, error.code, error.message, headers)


def http_error_response(error: HTTPException) -> Response:
    status = error.code or 500
    code, message = _HTTP_CODES.get(status, ("", ""))
    if not code:
        code = "_".join((error.name or "error").lower().split())
        message = error.description or error.name or "Lỗi."
    headers: dict[str, str] = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if isinstance(error, RequestEntityTooLarge) and request.mimetype == "multipart/form-data":
        code = "file_too_large"
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="cchc"'
    limit = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) // (1024 * 1024)
    return error_response(status, code, message.format(method=request.method, limit=limit), headers)


# --- who is calling ---------------------------------------------------------------------


def identify_caller() -> User:
    """The person behind this request: a bearer token when an Authorization header is sent
    (no CSRF: browsers never add that header on their own), else the signed-in session,
    whose unsafe requests must carry the CSRF token in a header."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    # Another scheme (say, Basic credentials a browser keeps for a proxy in front of the
    # site) is not addressed to us: the session decides then.
    if scheme.lower() == "bearer":
        if not credentials.strip():
            raise DomainError(
                "unauthenticated", "Tiêu đề Authorization phải có dạng “Bearer <mã truy cập>”."
            )
        user = authenticate(db_session(), credentials.strip(), SystemClock().now())
        if user is None:
            raise DomainError(
                "invalid_token", "Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi."
            )
        return user
    if current_user.is_authenticated:
        if request.method not in SAFE_METHODS:
            _check_csrf()
        signed_in: User = current_user.user
        return signed_in
    raise DomainError(
        "unauthenticated",
        "Cần đăng nhập, hoặc gửi mã truy cập trong tiêu đề “Authorization: Bearer <mã>”.",
    )


def _check_csrf() -> None:
    config = current_app.config
    if not config.get("WTF_CSRF_ENABLED", True):
        return
    token = None
    for name in config.get("WTF_CSRF_HEADERS", ["X-CSRFToken", "X-CSRF-Token"]):
        token = request.headers.get(name) or token
    refused = DomainError(
        "csrf_failed",
        "Thiếu hoặc sai mã chống giả mạo (CSRF): gửi tiêu đề X-CSRFToken với mã lấy từ "
        "/api/v1/csrf-token, hoặc dùng mã truy cập (Bearer).",
    )
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise refused from exc
    # As Flask-WTF does for forms: over HTTPS the request must come from this site.
    if request.is_secure and config.get("WTF_CSRF_SSL_STRICT", True):
        referrer = request.referrer
        if not referrer or not same_origin(referrer, f"https://{request.host}/"):
            raise refused


def caller() -> User:
    user: User = g.api_user
    return user


# --- reading input ----------------------------------------------------------------------


def json_body() -> dict[str, Any]:
    """The request's JSON object; refuses another content type (415) or bad JSON (400)."""
    if not request.is_json:
        raise DomainError(
            "unsupported_media_type",
            "Nội dung gửi lên phải là JSON (Content-Type: application/json).",
        )
    try:
        data = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError) as exc:
        raise DomainError("invalid_json", "Nội dung JSON không đọc được.") from exc
    if not isinstance(data, dict):
        raise DomainError("invalid_body", "Nội dung JSON phải là một đối tượng {…}.")
    return data


def require_multipart() -> None:
    if request.mimetype != "multipart/form-data":
        raise DomainError(
            "unsupported_media_type",
            "Tệp phải được gửi dạng multipart/form-data.",
        )


class Fields:
    """Named values from a JSON object (typed) or from a query string or form (text), read
    strictly: a wrong type or format is refused with 400 and names the field."""

    def __init__(
        self,
        values: Mapping[str, Any],
        *,
        typed: bool,
        allowed: Iterable[str] | None = None,
        error: str = "invalid_body",
    ) -> None:
        self.values = values
        self.typed = typed  # JSON: values have types; forms and query strings: all text
        self.error = error
        if allowed is not None:
            # A multipart part without a name arrives under the key None.
            unknown = sorted(str(name) for name in set(values) - set(allowed))
            if unknown:
                raise DomainError(
                    error, "Trường không được hỗ trợ: " + ", ".join(f"“{n}”" for n in unknown) + "."
                )

    def _bad(self, name: str, what: str) -> DomainError:
        return DomainError(self.error, f"Trường “{name}” {what}.")

    def _raw(self, name: str, required: bool) -> Any:
        value = self.values.get(name)
        if value == "" and not self.typed:
            value = None  # an empty form or query field is one not filled in
        if value is None and required:
            raise self._bad(name, "là bắt buộc")
        return value

    def text(self, name: str, *, required: bool = False, max_length: int = TEXT_MAX) -> str | None:
        value = self._raw(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._bad(name, "phải là chuỗi ký tự")
        return clean_text(value, name, max_length=max_length, error=self.error)

    def required_text(self, name: str, *, max_length: int = TEXT_MAX) -> str:
        value = self.text(name, required=True, max_length=max_length)
        assert value is not None  # required
        return value

    def integer(
        self, name: str, *, required: bool = False, minimum: int = 0, maximum: int = MAX_ID
    ) -> int | None:
        value = self._raw(name, required)
        if value is None:
            return None
        if not self.typed and isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 3.0 is the integer 3
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(name, "phải là số nguyên")
        if not minimum <= value <= maximum:
            raise self._bad(name, f"phải trong khoảng {minimum}–{maximum}")
        return value

    def boolean(self, name: str, *, required: bool = False) -> bool | None:
        value = self._raw(name, required)
        if value is None:
            return None
        if not self.typed and isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            raise self._bad(name, "phải là true hoặc false")
        return value

    def required_boolean(self, name: str) -> bool:
        value = self.boolean(name, required=True)
        assert value is not None  # required
        return value

    def day(self, name: str, *, required: bool = False) -> date | None:
        value = self.text(name, required=required, max_length=10)
        if value is None:
            return None
        try:
            if len(value) != 10:
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError as exc:
            raise self._bad(name, "phải là ngày dạng YYYY-MM-DD") from exc

    def choice(self, name: str, options: Iterable[str]) -> str | None:
        value = self.text(name, max_length=64)
        allowed = list(options)
        if value is not None and value not in allowed:
            raise self._bad(name, "phải là một trong: " + ", ".join(allowed))
        return value


def clean_text(value: str, name: str, *, max_length: int, error: str = "invalid_parameter") -> str:
    """Text the databases can store: no NUL character, valid Unicode, bounded length."""
    if "\x00" in value:
        raise DomainError(error, f"Trường “{name}” chứa ký tự NUL.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DomainError(error, f"Trường “{name}” không phải văn bản Unicode hợp lệ.") from exc
    if len(value) > max_length:
        raise DomainError(error, f"Trường “{name}” dài quá {max_length} ký tự.")
    return value


def ward_day_start(day: date) -> datetime:
    """The instant a Vietnamese calendar day begins, in UTC (the earliest representable
    instant for a day before it)."""
    try:
        return datetime.combine(day, time.min, tzinfo=WARD_TZ).astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def ward_day_end(day: date) -> datetime | None:
    """The instant after a Vietnamese calendar day ends (the next day's start), in UTC; None
    for the last representable day, after which there is no instant."""
    try:
        return end_of_day(day).astimezone(UTC)
    except OverflowError:
        return None
