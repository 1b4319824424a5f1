"""The Flask application: factory, extensions and blueprints. It holds no business rule."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template
from flask_wtf import CSRFProtect
from werkzeug.exceptions import InternalServerError

from app import (
    admin,
    api,
    auditor,
    auth,
    dashboard,
    database,
    oversight,
    pages,
    profile,
    reports_page,
    review,
    tasks,
)
from app.notices import AUDIT_MISMATCH_ON_WEB
from app.settings import Settings
from audit.ledger import CommittedMismatchError

csrf = CSRFProtect()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application. Nothing here touches the database or migrates."""
    settings = Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.config.update(
        SECRET_KEY=settings.secret_key(),
        CCHC_SETTINGS=settings,
        CCHC_DATABASE_URL=settings.database_url,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
    )
    if config:
        app.config.update(config)

    database.init_app(app, settings.audit_trail())
    csrf.init_app(app)
    auth.init_app(app)
    for blueprint in (
        auth.bp,
        pages.bp,
        tasks.bp,
        review.bp,
        dashboard.bp,
        oversight.bp,
        auditor.bp,
        admin.bp,
        profile.bp,
        reports_page.bp,
    ):
        app.register_blueprint(blueprint)
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    pages.register_filters(app)

    from app.cli import main as cchc_cli  # the same commands as `cchc`, under `flask cchc`

    app.cli.add_command(cchc_cli, name="cchc")

    @app.errorhandler(InternalServerError)
    def _server_error(error: Any) -> Any:
        # A fault of ours or of the database (a commit that failed, say), never of the input:
        # Flask has logged it, and the request's session is rolled back when it ends, so
        # nothing of the request was saved unless it had committed before the fault. An audit
        # entry stored otherwise than prepared comes after the COMMIT: saved, and an alarm.
        if isinstance(getattr(error, "original_exception", None), CommittedMismatchError):
            message = AUDIT_MISMATCH_ON_WEB
        else:
            message = (
                "Máy chủ gặp sự cố khi xử lý yêu cầu này. Vui lòng tải lại trang để xem thao "
                "tác đã được lưu hay chưa, rồi thử lại; nếu lỗi lặp lại, hãy báo cho quản trị "
                "hệ thống."
            )
        try:
            return render_template("server_error.html", message=message), 500
        except Exception:  # the page itself needs the database (who is signed in)
            return message, 500, {"Content-Type": "text/plain; charset=utf-8"}

    @app.errorhandler(413)
    def _too_large(_error: Any) -> Any:
        limit = settings.max_upload_bytes // (1024 * 1024)
        return f"Tệp vượt quá giới hạn {limit} MB.", 413

    @app.after_request
    def _security_headers(response: Any) -> Any:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
