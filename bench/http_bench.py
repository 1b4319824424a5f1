"""HTTP benchmark: the web application served by gunicorn on loopback, at city size.

The database holds `--wards` wards (100 by default), each with the 2026 plan's 48 tasks and
their instances and audit entries: the first is `cchc init --demo` exactly as `make run` makes
it (demo accounts, signing key), the others are loaded through `initialize_ward` like it, in
one process without the demo accounts. gunicorn (`--workers`, sync workers) serves
app.wsgi:application on 127.0.0.1; client threads (`http.client`, each its own signed-in
session) drive it, and for each scenario the bench prints requests per second and p50/p95/p99
latency, measured in this run:

- "Việc của đơn vị" (`/`, a unit member's task list), with 1 client and with `--clients`;
- the leadership's dashboard (`/dieu-hanh`, the ward leader), likewise;
- full lifecycles through HTTP as a browser does them, each POST followed by the GET of the
  page it redirects to: start → evidence for every product → submit (the unit's head) →
  review (a VHXH reviewer) → accept (VHXH's head); latency per request and per lifecycle.

Every measurement is bounded by `--requests` and by `--seconds`. Goal (issue 5): p95 under
100 ms for the task list and the dashboard at city size on the project's 2-core machine.
`--profile N` then renders each page N times in-process under cProfile and prints where the
time goes, by package.

    python bench/http_bench.py [--wards 100] [--workers 3] [--clients 4] [--requests 300]
        [--seconds 20] [--lifecycles 12] [--profile 50] [--pg-url URL] [--no-sqlite]

The PostgreSQL URL may also come from CCHC_BENCH_DATABASE_URL; the bench creates and drops its
own uniquely named database next to it.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import http.client
import os
import pstats
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.settings import audit_origin
from definitions.loader import default_plan_path, load_plan, load_units
from workflow.bootstrap import DEMO_PASSWORD, initialize_ward
from workflow.db import make_engine, session_factory
from workflow.models import Organization, PlanTask, TaskInstance, Unit
from workflow.trail import AuditTrail

HOST = "127.0.0.1"  # loopback only: the bench never serves or calls anything else
GOAL_MS = 100.0
PDF = b"%PDF-1.4\n% bench evidence\n%%EOF\n"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


# --- a signed-in client over http.client ------------------------------------------------------


class Refused(RuntimeError):
    """The application answered with an error or a refusal where the bench expected success."""


class Browser:
    """One person's cookie session against the server, as a browser would hold it."""

    def __init__(self, port: int, username: str) -> None:
        self.port = port
        self.username = username
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        page = self.get("/login")
        self.csrf = _csrf(page)
        status, location, _ = self.request(
            "POST",
            "/login",
            form={"username": username, "password": DEMO_PASSWORD, "csrf_token": self.csrf},
        )
        if status != 302 or location.rstrip("/").endswith("login"):
            raise Refused(f"{username} could not sign in ({status})")
        self.csrf = _csrf(self.get("/ho-so"))

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[int, str, str]:
        """One request on a new connection (gunicorn's sync workers close each one)."""
        headers = {"Host": f"{HOST}:{self.port}", "Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urlencode(form).encode()
            content_type = "application/x-www-form-urlencoded"
        if content_type:
            headers["Content-Type"] = content_type
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read().decode("utf-8", "replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                jar.load(header)
                for key, morsel in jar.items():
                    self.cookies[key] = morsel.value
            location = urlsplit(response.headers.get("Location", "")).path
            return response.status, location, payload
        finally:
            conn.close()

    def get(self, path: str) -> str:
        status, _, page = self.request("GET", path)
        if status != 200:
            raise Refused(f"GET {path} as {self.username}: {status}")
        return page

    def post_and_follow(
        self, path: str, form: dict[str, str], timings: list[float], files: bytes | None = None
    ) -> str:
        """POST a form, then GET the page it redirects to; both timed. The page, checked for
        the application's refusal message."""
        began = time.perf_counter()
        if files is None:
            status, location, _ = self.request("POST", path, form={**form, "csrf_token": self.csrf})
        else:
            body, content_type = _multipart({**form, "csrf_token": self.csrf}, files)
            status, location, _ = self.request("POST", path, body=body, content_type=content_type)
        timings.append(time.perf_counter() - began)
        if status != 302:
            raise Refused(f"POST {path} as {self.username}: {status}")
        began = time.perf_counter()
        page = self.get(location)
        timings.append(time.perf_counter() - began)
        refusal = re.search(r'<p class="flash error">([^<]*)', page)
        if refusal:
            raise Refused(f"POST {path} as {self.username}: {refusal.group(1)}")
        return page


def _csrf(page: str) -> str:
    match = CSRF.search(page)
    if match is None:
        raise Refused("no CSRF token on the page")
    return match.group(1)


def _multipart(fields: dict[str, str], data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bao-cao.pdf"'
        f"\r\nContent-Type: application/pdf\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def run_clients(jobs: list[Callable[[], None]], count: int, seconds: float) -> Sample:
    """Run `jobs` (one per client thread) repeatedly until `count` runs in all or `seconds`
    have passed; each run's latency is recorded."""
    sample = Sample()
    lock = threading.Lock()
    issued = 0
    deadline = time.perf_counter() + seconds

    def client(job: Callable[[], None]) -> None:
        nonlocal issued
        while True:
            with lock:
                if issued >= count or time.perf_counter() >= deadline:
                    return
                issued += 1
            began = time.perf_counter()
            try:
                job()
            except Exception as exc:  # reported, and the run goes on
                with lock:
                    sample.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            took = time.perf_counter() - began
            with lock:
                sample.latencies.append(took)

    threads = [threading.Thread(target=client, args=(job,)) for job in jobs]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sample.elapsed = time.perf_counter() - began
    return sample


def line(label: str, what: str, clients: int, sample: Sample, unit: str = "req") -> str:
    text_ = (
        f"[{label}] {what:<34} {clients:>2} client(s): {len(sample.latencies):>5} {unit} "
        f"in {sample.elapsed:5.1f} s = {sample.rate:7.1f} {unit}/s; "
        f"p50 {sample.percentile(50):7.1f} ms  p95 {sample.percentile(95):7.1f} ms  "
        f"p99 {sample.percentile(99):7.1f} ms"
    )
    if sample.errors:
        text_ += f"  ERRORS {len(sample.errors)}: {sample.errors[0]}"
    return text_


# --- the database and the server ---------------------------------------------------------------


@dataclass
class Deployment:
    label: str
    url: str
    env: dict[str, str]
    lifecycle_tasks: list[tuple[int, str, list[str]]]  # instance id, lead unit, products


def seed(label: str, url: str, scratch: Path, wards: int) -> Deployment:
    """`cchc init --demo` for the first ward, then the other wards' plans in one process."""
    env = {
        **os.environ,
        "CCHC_DATABASE_URL": url,
        "CCHC_INSTANCE_DIR": str(scratch / label / "instance"),
        "CCHC_SECRET_KEY": uuid.uuid4().hex * 2,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    began = time.perf_counter()
    init = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "init", "--demo"],
        env=env,
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        raise RuntimeError(f"cchc init --demo failed:\n{init.stdout}{init.stderr}")
    first = time.perf_counter() - began
    plan_path = default_plan_path()
    plan = load_plan(plan_path)
    plan_text = plan_path.read_text(encoding="utf-8")
    catalog = load_units()
    trail = AuditTrail()
    engine = make_engine(url)
    factory = session_factory(engine)
    try:
        for number in range(1, wards):
            slug = f"phuong-{number:03d}"
            with factory() as session:
                initialize_ward(
                    session,
                    catalog=catalog,
                    plan=dataclasses.replace(plan, organization=slug),
                    plan_text=plan_text,
                    now=NOW,
                    organization_name=f"Phường số {number}",
                    audit_origin=audit_origin(slug),
                    trail=trail,
                )
                session.commit()
        with factory() as session:
            counts = {
                "wards": session.scalar(select(func.count()).select_from(Organization)),
                "task instances": session.scalar(select(func.count()).select_from(TaskInstance)),
                "audit entries": session.scalar(text("SELECT count(*) FROM audit_entry")),
            }
            ward = session.scalars(select(Organization).order_by(Organization.id)).first()
            assert ward is not None
            rows = session.execute(
                select(TaskInstance.id, Unit.code, PlanTask.products)
                .join(Unit, TaskInstance.unit_id == Unit.id)
                .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
                .where(
                    Unit.organization_id == ward.id,
                    TaskInstance.state == "assigned",
                    TaskInstance.due_date.is_not(None),
                    Unit.code != "VHXH",  # VHXH's own work is decided by the ward leader
                    Unit.kind != "leadership",  # no demo accounts to carry it out
                )
                .order_by(TaskInstance.id)
            ).all()
    finally:
        engine.dispose()
    tasks = [(int(i), str(code), [str(p["name"]) for p in products]) for i, code, products in rows]
    print(
        f"[{label}] seeded in {time.perf_counter() - began:.1f} s (first ward {first:.1f} s): "
        + ", ".join(f"{v:,} {k}" for k, v in counts.items())
    )
    return Deployment(label, url, env, tasks)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def gunicorn(deployment: Deployment, workers: int, scratch: Path) -> Iterator[int]:
    port = _free_port()
    log = (scratch / f"gunicorn-{deployment.label}.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"{HOST}:{port}",
            "--timeout",
            "120",
            "app.wsgi:application",
        ],
        env=deployment.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.perf_counter() + 30
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.perf_counter() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- the scenarios -------------------------------------------------------------------------------


def page_scenario(
    label: str, port: int, what: str, path: str, username: str, args: argparse.Namespace
) -> dict[int, Sample]:
    browsers = [Browser(port, username) for _ in range(args.clients)]
    for browser in browsers:  # warm every worker's caches and pools
        for _ in range(3):
            browser.get(path)
    results: dict[int, Sample] = {}
    for clients in sorted({1, args.clients}):
        jobs = [_fetcher(b, path) for b in browsers[:clients]]
        sample = run_clients(jobs, args.requests, args.seconds)
        print(line(label, f"{what} ({path})", clients, sample), flush=True)
        results[clients] = sample
    return results


def _fetcher(browser: Browser, path: str) -> Callable[[], None]:
    def fetch() -> None:
        browser.get(path)

    return fetch


def lifecycle_scenario(
    label: str, port: int, deployment: Deployment, args: argparse.Namespace
) -> tuple[Sample, Sample]:
    """Full lifecycles, `--clients` at a time, each client with its own people's sessions."""
    todo = list(deployment.lifecycle_tasks[: args.lifecycles])
    lock = threading.Lock()
    requests_sample = Sample()
    sessions: dict[tuple[int, str], Browser] = {}

    def person(client: int, username: str) -> Browser:
        key = (client, username)
        if key not in sessions:
            sessions[key] = Browser(port, username)
        return sessions[key]

    def job_for(client: int) -> Callable[[], None]:
        def lifecycle() -> None:
            with lock:
                if not todo:
                    raise Refused("no instance left")
                instance_id, unit, products = todo.pop(0)
            member = person(client, f"{unit.lower()}.canbo")
            head = person(client, f"{unit.lower()}.truong")
            reviewer = person(client, "vhxh.thamdinh1")
            approver = person(client, "vhxh.truong")
            timings: list[float] = []
            act = f"/nhiem-vu/{instance_id}/thao-tac"
            member.post_and_follow(act, {"event": "start"}, timings)
            for product in products:
                member.post_and_follow(
                    f"/nhiem-vu/{instance_id}/tai-lieu",
                    {"product": product},
                    timings,
                    files=PDF + product.encode() + str(instance_id).encode(),
                )
            head.post_and_follow(act, {"event": "submit"}, timings)
            reviewer.post_and_follow(
                act,
                {"event": "review", "findings": "Đạt yêu cầu.", "recommendation": "accept"},
                timings,
            )
            page = approver.post_and_follow(
                act, {"event": "accept", "assessment": "Hoàn thành."}, timings
            )
            if "Đã nghiệm thu" not in page:
                raise Refused(f"instance {instance_id} is not accepted")
            with lock:
                requests_sample.latencies.extend(timings)

        return lifecycle

    for client in range(args.clients):  # sign everyone in before the clock starts
        for username in ("vhxh.thamdinh1", "vhxh.truong"):
            person(client, username)
    units = {unit for _, unit, _ in todo}
    for client in range(args.clients):
        for unit in units:
            person(client, f"{unit.lower()}.canbo")
            person(client, f"{unit.lower()}.truong")
    cycles = run_clients([job_for(c) for c in range(args.clients)], len(todo), args.seconds * 3)
    requests_sample.elapsed = cycles.elapsed
    requests_sample.errors = cycles.errors
    print(line(label, "lifecycle: each request", args.clients, requests_sample), flush=True)
    print(line(label, "lifecycle: whole (start→accept)", args.clients, cycles, "cycle"))
    return cycles, requests_sample


# --- profiling -----------------------------------------------------------------------------------


def _package(filename: str) -> str:
    path = filename.replace("\\", "/")
    for marker, name in (
        ("/sqlalchemy/", "sqlalchemy"),
        ("/psycopg", "psycopg (driver)"),
        ("sqlite3", "sqlite3 (driver)"),
        ("/jinja2/", "jinja2"),
        ("/markupsafe/", "jinja2"),
        ("/werkzeug/", "flask/werkzeug"),
        ("/flask", "flask/werkzeug"),
        ("/holidays/", "holidays"),
        ("/workflow/", "workflow (ours)"),
        ("/app/", "app (ours)"),
        ("/audit/", "audit (ours)"),
        ("/definitions/", "definitions (ours)"),
        ("/templates/", "jinja2 templates (ours)"),
    ):
        if marker in path:
            return name
    if path.startswith("<template") or "template" in path:
        return "jinja2 templates (ours)"
    if path in ("~", "") or path.startswith("<"):
        return "builtins (C: DB driver calls, hashing, I/O)"
    return "other python"


def profile(deployment: Deployment, count: int) -> None:
    """Render the two pages in-process under cProfile: own time by package, top functions."""
    saved = dict(os.environ)
    os.environ.update(deployment.env)
    try:
        from app import create_app
        from app.database import database_of

        application = create_app({"TESTING": True})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        for path, username in (("/", "vp.canbo"), ("/dieu-hanh", "lanhdao")):
            client = application.test_client()
            page = client.get("/login").get_data(as_text=True)
            client.post(
                "/login",
                data={"username": username, "password": DEMO_PASSWORD, "csrf_token": _csrf(page)},
            )
            for _ in range(3):
                assert client.get(path).status_code == 200
            profiler = cProfile.Profile()
            began = time.perf_counter()
            profiler.enable()
            for _ in range(count):
                client.get(path)
            profiler.disable()
            took = (time.perf_counter() - began) / count * 1000
            stats = pstats.Stats(profiler)
            by_package: dict[str, float] = defaultdict(float)
            total = 0.0
            raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
            for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
                by_package[_package(filename)] += tottime
                total += tottime
            shares = sorted(by_package.items(), key=lambda kv: -kv[1])
            print(
                f"[{deployment.label}] profile {path} ({count} renders in-process, "
                f"{took:.1f} ms each under cProfile): "
                + ", ".join(f"{name} {share / total:.0%}" for name, share in shares[:7])
            )
            counted: list[tuple[float, str]] = []
            for (filename, lineno, name), (_cc, nc, _tt, cumtime, _c) in raw.items():
                ours = any(part in filename for part in ("/workflow/", "/app/"))
                if ours and filename.endswith(".py"):
                    short = filename.split("/main/")[-1] if "/main/" in filename else filename
                    counted.append((cumtime, f"{short}:{lineno} {name} ({nc // count}×/page)"))
            for cumtime, where in sorted(counted, reverse=True)[:6]:
                print(f"    {cumtime / count * 1000:6.1f} ms/page cumulative  {where}")
    finally:
        database_of(application).engine.dispose()


# --- running -------------------------------------------------------------------------------------


@contextmanager
def pg_database(base_url: str) -> Iterator[str]:
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"cchc_httpbench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_backend(label: str, url: str, args: argparse.Namespace, scratch: Path) -> list[str]:
    deployment = seed(label, url, scratch, args.wards)
    verdicts: list[str] = []
    with gunicorn(deployment, args.workers, scratch) as port:
        for what, path, username in (
            ("task list, Việc của đơn vị", "/", "vp.canbo"),
            ("dashboard, Điều hành", "/dieu-hanh", "lanhdao"),
        ):
            results = page_scenario(label, port, what, path, username, args)
            for clients, sample in results.items():
                p95 = sample.percentile(95)
                met = "met" if p95 < GOAL_MS and not sample.errors else "NOT met"
                verdicts.append(
                    f"[{label}] {path} with {clients} client(s): p95 {p95:.1f} ms "
                    f"(goal < {GOAL_MS:.0f} ms: {met})"
                )
        if args.lifecycles:
            lifecycle_scenario(label, port, deployment, args)
    if args.profile:
        profile(deployment, args.profile)
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--wards", type=int, default=100, help="wards in the database")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (and 1)")
    parser.add_argument("--requests", type=int, default=300, help="at most, per measurement")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most, per measurement")
    parser.add_argument("--lifecycles", type=int, default=12, help="full lifecycles; 0: none")
    parser.add_argument("--profile", type=int, default=40, help="renders profiled; 0: none")
    parser.add_argument("--pg-url", default=os.environ.get("CCHC_BENCH_DATABASE_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    if args.wards < 1 or args.clients < 1 or args.workers < 1:
        parser.error("--wards, --clients and --workers must be at least 1")

    scratch = Path(tempfile.mkdtemp(prefix="cchc-http-bench-"))
    began = time.perf_counter()
    load = os.getloadavg()[0]
    print(
        f"{datetime.now(UTC):%d/%m/%Y %H:%M} UTC, load average {load:.2f}, {os.cpu_count()} CPUs; "
        f"{args.wards} wards; gunicorn {args.workers} sync workers on {HOST}; "
        f"at most {args.requests} requests or {args.seconds:.0f} s per measurement"
    )
    verdicts: list[str] = []
    try:
        if not args.no_sqlite:
            sqlite_url = f"sqlite:///{scratch / 'http.sqlite'}"
            verdicts += run_backend("sqlite", sqlite_url, args, scratch)
        if args.pg_url:
            with pg_database(args.pg_url) as url:
                verdicts += run_backend("postgresql", url, args, scratch)
        else:
            print("[postgresql] skipped: give --pg-url or set CCHC_BENCH_DATABASE_URL")
        for verdict in verdicts:
            print(verdict)
        print(f"total {time.perf_counter() - began:.1f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
