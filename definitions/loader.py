"""Load, check and write plan definition files: the plan, its tasks and its targets as data."""

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

import yaml

from definitions.calendar import WorkingCalendar, load_calendar
from definitions.products import Product, ProductVocabulary, load_products
from definitions.timeframe import Schedule, TimeframeError, parse_timeframe
from definitions.units import UnitCatalog, load_units
from definitions.yamlio import read_yaml

__all__ = [
    "Kpi",
    "LegalBasis",
    "PlanDefinition",
    "PlanDefinitionError",
    "Policy",
    "Product",
    "Report",
    "ReportPeriod",
    "ReportingRegime",
    "Section",
    "Signer",
    "TaskDefinition",
    "UnitCatalog",
    "default_plan_path",
    "dump_plan_yaml",
    "load_plan",
    "load_units",
    "plan_from_data",
    "plan_to_dict",
    "validate_plan",
]

OutstandingContributions = Literal["block", "explain"]
_OUTSTANDING: tuple[str, ...] = get_args(OutstandingContributions)
# How a measured value is compared with a target: the plan's KPIs and the rubric's bands.
COMPARATORS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
}
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
_T = TypeVar("_T")

_PLAN_KEYS = (
    "code",
    "title",
    "issuer",
    "organization",
    "city",
    "year",
    "signer",
    "legal_bases",
    "policy",
    "reporting",
    "sections",
    "kpis",
    "tasks",
)
_TASK_KEYS = (
    "number",
    "section",
    "content",
    "lead_text",
    "leads",
    "coordinators_text",
    "coordinators",
    "timeframe",
    "schedule",
    "products",
)
_HEADER = (
    "# Plan definition written by definitions/importer.py from the plan's appendix table and\n"
    "# its base file (definitions/data/*.base.yaml): change those and re-import.\n"
)


def default_plan_path() -> Path:
    """Return the path of the checked-in 2026 plan of phường Trần Hưng Đạo."""
    return Path(__file__).parent / "plans" / "tran-hung-dao-2026.yaml"


class PlanDefinitionError(ValueError):
    """A plan definition file that does not follow the schema.

    The message (Vietnamese) names the file, the task and the field, e.g.
    `tran-hung-dao-2026.yaml: nhiệm vụ 12, trường "leads": không có đơn vị mã "XYZ"`.
    """

    def __init__(
        self,
        path: Path,
        detail: str,
        *,
        task_number: int | None = None,
        field: str | None = None,
        position: int | None = None,
    ) -> None:
        where: list[str] = []
        if task_number is not None:
            where.append(f"nhiệm vụ {task_number}")
        elif position is not None:
            where.append(f"nhiệm vụ thứ {position} trong danh sách")
        if field is not None:
            where.append(f'trường "{field}"')
        place = f"{path.name}: {', '.join(where)}" if where else path.name
        super().__init__(f"{place}: {detail}")
        self.path = path
        self.task_number = task_number
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class Signer:
    name: str
    title: str


@dataclass(frozen=True)
class LegalBasis:
    """A document the plan is based on, e.g. Nghị quyết 76/NQ-CP of 15/07/2021."""

    kind: str
    number: str
    date: date
    issuer: str
    title: str


@dataclass(frozen=True)
class Policy:
    """Workflow settings the plan chooses.

    submit_requires_head: only the lead unit's head may submit a task's results.
    outstanding_contributions: "block" refuses a submission while coordinating units still owe
    a contribution; "explain" accepts it with a written explanation (giải trình).
    """

    submit_requires_head: bool
    outstanding_contributions: OutstandingContributions


@dataclass(frozen=True)
class ReportPeriod:
    """One report to send: due before `due_before` (so on `due`, a working day), covering the
    data of cutoff_start..cutoff_end when the national regime sets a cut-off."""

    label: str
    due_before: date
    due: date
    cutoff_start: date | None
    cutoff_end: date | None


@dataclass(frozen=True)
class Report:
    code: str
    name: str
    periods: tuple[ReportPeriod, ...]


@dataclass(frozen=True)
class ReportingRegime:
    """Where periodic reports go (`recipient`, through the unit `via`) and when."""

    recipient: str
    via: str
    reports: tuple[Report, ...]


@dataclass(frozen=True)
class Section:
    """A section of the task table; `number` is its roman numeral ("I" to "VII")."""

    number: str
    title: str


@dataclass(frozen=True)
class Kpi:
    """A measurable target: the measured value must be `comparator` `threshold` (in `unit`)."""

    code: str
    name: str
    unit: str
    comparator: str
    threshold: Decimal
    task: int | None
    source: str | None

    def met(self, value: Decimal) -> bool:
        """Whether a measured value meets the target."""
        return COMPARATORS[self.comparator](value, self.threshold)


@dataclass(frozen=True)
class TaskDefinition:
    """One task of the plan's appendix, its cells verbatim and resolved."""

    number: int
    section: str | None
    content: str
    lead_text: str
    leads: tuple[str, ...]
    coordinators_text: str
    coordinators: tuple[str, ...]
    timeframe: str
    schedule: Schedule
    products: tuple[Product, ...]


@dataclass(frozen=True)
class PlanDefinition:
    code: str
    title: str
    issuer: str
    organization: str
    city: str
    year: int
    signer: Signer
    legal_bases: tuple[LegalBasis, ...]
    policy: Policy
    reporting: ReportingRegime
    sections: tuple[Section, ...]
    kpis: tuple[Kpi, ...]
    tasks: tuple[TaskDefinition, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data: the same data a definition file holds."""
        return plan_to_dict(self)

    def task(self, number: int) -> TaskDefinition:
        """Return the task numbered `number`; KeyError if there is none."""
        for task in self.tasks:
            if task.number == number:
                return task
        raise KeyError(number)


class _Problem(Exception):
    """One schema problem, before it is placed in its file and task."""

    def __init__(self, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


def _mapping(
    value: object, required: Sequence[str], optional: Sequence[str] = (), *, field: str | None
) -> dict[str, object]:
    """Check a mapping's keys. With field None the keys are fields of their own (a task, the
    plan); otherwise problems are reported under `field`."""
    if not isinstance(value, dict):
        raise _Problem(field, "phải là một bảng khóa–giá trị")
    data = cast(dict[str, object], value)
    for key in required:
        if key not in data:
            raise (
                _Problem(key, "thiếu trường bắt buộc")
                if field is None
                else _Problem(field, f'thiếu khóa "{key}"')
            )
    for key in data:
        if key not in required and key not in optional:
            detail = f'khóa "{key}" không có trong lược đồ'
            raise _Problem(str(key) if field is None else field, detail)
    return data


def _text(value: object, field: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _Problem(field, "phải là văn bản")
    if not empty and not value.strip():
        raise _Problem(field, "không được để trống")
    return value


def _optional_text(value: object, field: str) -> str | None:
    return None if value is None else _text(value, field)


def _integer(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Problem(field, "phải là số nguyên")
    return value


def _boolean(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise _Problem(field, "phải là true hoặc false")
    return value


def _date(value: object, field: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(_text(value, field))
    except ValueError:
        raise _Problem(field, f'ngày "{value}" không hợp lệ (YYYY-MM-DD)') from None


def _optional_date(value: object, field: str) -> date | None:
    return None if value is None else _date(value, field)


def _items(value: object, field: str) -> list[object]:
    if not isinstance(value, list):
        raise _Problem(field, "phải là một danh sách")
    return cast(list[object], value)


def _threshold(value: object, field: str) -> Decimal:
    if isinstance(value, float):
        raise _Problem(field, 'không dùng số thực: ghi số nguyên hoặc chuỗi thập phân như "95.5"')
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    raise _Problem(field, f'ngưỡng "{value}" phải là số nguyên hoặc chuỗi thập phân')


def _plain(value: object) -> object:
    """Return `value` with dates as ISO strings, as they are written in the file."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class _PlanReader:
    """Reads a plan document, collecting every problem instead of stopping at the first."""

    def __init__(
        self,
        path: Path,
        units: UnitCatalog,
        calendar: WorkingCalendar,
        products: ProductVocabulary,
    ) -> None:
        self.path = path
        self.units = units
        self.calendar = calendar
        self.products = products
        self.errors: list[PlanDefinitionError] = []

    def _attempt(
        self,
        build: Callable[[], _T],
        *,
        task_number: int | None = None,
        position: int | None = None,
    ) -> _T | None:
        try:
            return build()
        except _Problem as problem:
            self.errors.append(
                PlanDefinitionError(
                    self.path,
                    problem.detail,
                    task_number=task_number,
                    field=problem.field,
                    position=position,
                )
            )
            return None

    def read(self, document: object) -> PlanDefinition | None:
        data = self._attempt(lambda: _mapping(document, _PLAN_KEYS, field=None))
        if data is None:
            return None
        year = self._attempt(lambda: _integer(data["year"], "year"))
        if year is None:
            # Every schedule is computed for the plan's year: nothing more can be checked.
            return None
        texts = {
            key: self._attempt(partial(_text, data[key], key))
            for key in ("code", "title", "issuer", "organization", "city")
        }
        signer = self._attempt(lambda: self._signer(data["signer"]))
        legal_bases = self._attempt(lambda: self._legal_bases(data["legal_bases"]))
        policy = self._attempt(lambda: self._policy(data["policy"]))
        reporting = self._attempt(lambda: self._reporting(data["reporting"]))
        sections = self._attempt(lambda: self._sections(data["sections"]))
        tasks = self._tasks(data["tasks"], year, sections or ())
        numbers = {task.number for task in tasks or ()}
        kpis = self._attempt(lambda: self._kpis(data["kpis"], numbers))
        if self.errors:
            return None
        return PlanDefinition(
            code=str(texts["code"]),
            title=str(texts["title"]),
            issuer=str(texts["issuer"]),
            organization=str(texts["organization"]),
            city=str(texts["city"]),
            year=year,
            signer=cast(Signer, signer),
            legal_bases=cast(tuple[LegalBasis, ...], legal_bases),
            policy=cast(Policy, policy),
            reporting=cast(ReportingRegime, reporting),
            sections=cast(tuple[Section, ...], sections),
            kpis=cast(tuple[Kpi, ...], kpis),
            tasks=cast(tuple[TaskDefinition, ...], tasks),
        )

    def _signer(self, value: object) -> Signer:
        data = _mapping(value, ("name", "title"), field="signer")
        return Signer(_text(data["name"], "signer"), _text(data["title"], "signer"))

    def _legal_bases(self, value: object) -> tuple[LegalBasis, ...]:
        bases = []
        for item in _items(value, "legal_bases"):
            data = _mapping(
                item, ("kind", "number", "date", "issuer", "title"), field="legal_bases"
            )
            bases.append(
                LegalBasis(
                    kind=_text(data["kind"], "legal_bases"),
                    number=_text(data["number"], "legal_bases"),
                    date=_date(data["date"], "legal_bases"),
                    issuer=_text(data["issuer"], "legal_bases"),
                    title=_text(data["title"], "legal_bases"),
                )
            )
        return tuple(bases)

    def _policy(self, value: object) -> Policy:
        data = _mapping(
            value, ("submit_requires_head", "outstanding_contributions"), field="policy"
        )
        outstanding = data["outstanding_contributions"]
        if outstanding not in _OUTSTANDING:
            raise _Problem(
                "policy", f'"outstanding_contributions" phải là {" hoặc ".join(_OUTSTANDING)}'
            )
        return Policy(
            submit_requires_head=_boolean(data["submit_requires_head"], "policy"),
            outstanding_contributions=cast(OutstandingContributions, outstanding),
        )

    def _reporting(self, value: object) -> ReportingRegime:
        data = _mapping(value, ("recipient", "via", "reports"), field="reporting")
        via = _text(data["via"], "reporting")
        if via not in self.units.units:
            raise _Problem("reporting", f'không có đơn vị mã "{via}"')
        reports = []
        for item in _items(data["reports"], "reporting"):
            report = _mapping(item, ("code", "name", "periods"), field="reporting")
            periods = tuple(
                self._report_period(period) for period in _items(report["periods"], "reporting")
            )
            reports.append(
                Report(
                    _text(report["code"], "reporting"), _text(report["name"], "reporting"), periods
                )
            )
        return ReportingRegime(_text(data["recipient"], "reporting"), via, tuple(reports))

    def _report_period(self, value: object) -> ReportPeriod:
        keys = ("label", "due_before", "due", "cutoff_start", "cutoff_end")
        data = _mapping(value, keys, field="reporting")
        period = ReportPeriod(
            label=_text(data["label"], "reporting"),
            due_before=_date(data["due_before"], "reporting"),
            due=_date(data["due"], "reporting"),
            cutoff_start=_optional_date(data["cutoff_start"], "reporting"),
            cutoff_end=_optional_date(data["cutoff_end"], "reporting"),
        )
        expected = self.calendar.last_working_day_before(period.due_before)
        if period.due != expected:
            raise _Problem(
                "reporting",
                f'{period.label}: hạn "due" phải là {expected:%d/%m/%Y}, ngày làm việc cuối cùng '
                f"trước {period.due_before:%d/%m/%Y}",
            )
        if (period.cutoff_start is None) != (period.cutoff_end is None) or (
            period.cutoff_start and period.cutoff_end and period.cutoff_start > period.cutoff_end
        ):
            raise _Problem("reporting", f"{period.label}: kỳ số liệu không hợp lệ")
        return period

    def _sections(self, value: object) -> tuple[Section, ...]:
        sections = []
        for item in _items(value, "sections"):
            data = _mapping(item, ("number", "title"), field="sections")
            sections.append(
                Section(_text(data["number"], "sections"), _text(data["title"], "sections"))
            )
        numbers = [section.number for section in sections]
        if len(set(numbers)) != len(numbers):
            raise _Problem("sections", "số thứ tự phần bị trùng")
        return tuple(sections)

    def _kpis(self, value: object, task_numbers: set[int]) -> tuple[Kpi, ...]:
        kpis = []
        keys = ("code", "name", "unit", "comparator", "threshold", "task", "source")
        for item in _items(value, "kpis"):
            data = _mapping(item, keys, field="kpis")
            code = _text(data["code"], "kpis")
            comparator = data["comparator"]
            if comparator not in COMPARATORS:
                raise _Problem("kpis", f'{code}: phép so sánh "{comparator}" không hợp lệ')
            task = None if data["task"] is None else _integer(data["task"], "kpis")
            if task is not None and task not in task_numbers:
                raise _Problem("kpis", f"{code}: không có nhiệm vụ số {task}")
            kpis.append(
                Kpi(
                    code=code,
                    name=_text(data["name"], "kpis"),
                    unit=_text(data["unit"], "kpis"),
                    comparator=str(comparator),
                    threshold=_threshold(data["threshold"], "kpis"),
                    task=task,
                    source=_optional_text(data["source"], "kpis"),
                )
            )
        return tuple(kpis)

    def _tasks(
        self, value: object, year: int, sections: tuple[Section, ...]
    ) -> tuple[TaskDefinition, ...] | None:
        items = self._attempt(lambda: _items(value, "tasks"))
        if items is None:
            return None
        section_numbers = {section.number for section in sections}
        tasks: list[TaskDefinition] = []
        numbers: list[int] = []
        for position, item in enumerate(items, start=1):
            number = item.get("number") if isinstance(item, dict) else None
            known = number if isinstance(number, int) and not isinstance(number, bool) else None
            if known is not None:
                numbers.append(known)
            task = self._attempt(
                partial(self._task, item, year, section_numbers),
                task_number=known,
                position=position,
            )
            if task is not None:
                tasks.append(task)
        for number in sorted({n for n in numbers if numbers.count(n) > 1}):
            self.errors.append(
                PlanDefinitionError(
                    self.path, "số thứ tự bị trùng", task_number=number, field="number"
                )
            )
        for number in sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers)):
            self.errors.append(
                PlanDefinitionError(
                    self.path,
                    f"thiếu nhiệm vụ số {number}: các nhiệm vụ phải được đánh số liên tục từ 1",
                    task_number=number,
                    field="number",
                )
            )
        return tuple(tasks)

    def _task(self, value: object, year: int, section_numbers: set[str]) -> TaskDefinition:
        data = _mapping(value, _TASK_KEYS, field=None)
        number = _integer(data["number"], "number")
        if number < 1:
            raise _Problem("number", "phải là số nguyên dương")
        section = _optional_text(data["section"], "section")
        if section is not None and section not in section_numbers:
            raise _Problem("section", f'không có phần "{section}" trong "sections"')
        leads = self._codes(data["leads"], "leads")
        if not leads:
            raise _Problem("leads", "cần ít nhất một đơn vị chủ trì")
        for code in leads:
            if code not in self.units.units:
                raise _Problem("leads", f'không có đơn vị mã "{code}"')
            if not self.units.units[code].can_lead:
                raise _Problem("leads", f'đơn vị "{code}" không được chủ trì nhiệm vụ')
        coordinators = self._codes(data["coordinators"], "coordinators")
        for code in coordinators:
            if not self.units.is_coordinator(code):
                raise _Problem("coordinators", f'không có đơn vị hoặc nhóm mã "{code}"')
        timeframe = _text(data["timeframe"], "timeframe")
        try:
            schedule = parse_timeframe(timeframe, year, self.calendar)
        except TimeframeError as error:
            raise _Problem("timeframe", str(error)) from None
        if _plain(data["schedule"]) != schedule.to_json():
            raise _Problem(
                "schedule",
                f'khác với kết quả phân tích thời hạn "{timeframe}"; '
                f"đúng ra phải là {schedule.to_json()}",
            )
        return TaskDefinition(
            number=number,
            section=section,
            content=_text(data["content"], "content"),
            lead_text=_text(data["lead_text"], "lead_text"),
            leads=leads,
            coordinators_text=_text(data["coordinators_text"], "coordinators_text", empty=True),
            coordinators=coordinators,
            timeframe=timeframe,
            schedule=schedule,
            products=self._products(data["products"]),
        )

    def _codes(self, value: object, field: str) -> tuple[str, ...]:
        return tuple(_text(code, field) for code in _items(value, field))

    def _products(self, value: object) -> tuple[Product, ...]:
        products = []
        for index, item in enumerate(_items(value, "products"), start=1):
            data = _mapping(item, ("name", "kind"), field="products")
            name = _text(data["name"], "products")
            kind = _text(data["kind"], "products")
            if kind not in self.products.kinds:
                raise _Problem("products", f'sản phẩm thứ {index}: không có loại sản phẩm "{kind}"')
            products.append(Product(name, kind))
        return tuple(products)


def plan_from_data(
    data: object,
    source: Path,
    *,
    units: UnitCatalog | None = None,
    calendar: WorkingCalendar | None = None,
    products: ProductVocabulary | None = None,
) -> PlanDefinition:
    """Check a plan document already read from YAML; `source` names it in error messages.

    Raises the first PlanDefinitionError found.
    """
    plan, errors = _read(data, source, units, calendar, products)
    if plan is None:
        raise errors[0]
    return plan


def _read(
    data: object,
    source: Path,
    units: UnitCatalog | None,
    calendar: WorkingCalendar | None,
    products: ProductVocabulary | None,
) -> tuple[PlanDefinition | None, list[PlanDefinitionError]]:
    reader = _PlanReader(
        source, units or load_units(), calendar or load_calendar(), products or load_products()
    )
    plan = reader.read(data)
    return plan, reader.errors


def _read_yaml(path: Path) -> object:
    try:
        return read_yaml(path)
    except OSError as error:
        raise PlanDefinitionError(path, f"không mở được tệp ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise PlanDefinitionError(path, f"không đọc được YAML ({error})") from None


def load_plan(
    path: str | Path,
    *,
    units: UnitCatalog | None = None,
    calendar: WorkingCalendar | None = None,
    products: ProductVocabulary | None = None,
) -> PlanDefinition:
    """Read and check a plan definition file; raises PlanDefinitionError if it is not valid."""
    path = Path(path)
    return plan_from_data(_read_yaml(path), path, units=units, calendar=calendar, products=products)


def validate_plan(
    path: str | Path,
    *,
    units: UnitCatalog | None = None,
    calendar: WorkingCalendar | None = None,
    products: ProductVocabulary | None = None,
) -> list[str]:
    """Return every problem of a plan definition file (Vietnamese messages); empty if valid."""
    path = Path(path)
    try:
        data = _read_yaml(path)
    except PlanDefinitionError as error:
        return [str(error)]
    return [str(error) for error in _read(data, path, units, calendar, products)[1]]


def _threshold_value(threshold: Decimal) -> int | str:
    return int(threshold) if threshold == threshold.to_integral_value() else str(threshold)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def plan_to_dict(plan: PlanDefinition) -> dict[str, Any]:
    """Return the plan as the plain data written to a definition file, in the file's order."""
    return {
        "code": plan.code,
        "title": plan.title,
        "issuer": plan.issuer,
        "organization": plan.organization,
        "city": plan.city,
        "year": plan.year,
        "signer": {"name": plan.signer.name, "title": plan.signer.title},
        "legal_bases": [
            {
                "kind": basis.kind,
                "number": basis.number,
                "date": basis.date.isoformat(),
                "issuer": basis.issuer,
                "title": basis.title,
            }
            for basis in plan.legal_bases
        ],
        "policy": {
            "submit_requires_head": plan.policy.submit_requires_head,
            "outstanding_contributions": plan.policy.outstanding_contributions,
        },
        "reporting": {
            "recipient": plan.reporting.recipient,
            "via": plan.reporting.via,
            "reports": [
                {
                    "code": report.code,
                    "name": report.name,
                    "periods": [
                        {
                            "label": period.label,
                            "due_before": period.due_before.isoformat(),
                            "due": period.due.isoformat(),
                            "cutoff_start": _iso(period.cutoff_start),
                            "cutoff_end": _iso(period.cutoff_end),
                        }
                        for period in report.periods
                    ],
                }
                for report in plan.reporting.reports
            ],
        },
        "sections": [
            {"number": section.number, "title": section.title} for section in plan.sections
        ],
        "kpis": [
            {
                "code": kpi.code,
                "name": kpi.name,
                "unit": kpi.unit,
                "comparator": kpi.comparator,
                "threshold": _threshold_value(kpi.threshold),
                "task": kpi.task,
                "source": kpi.source,
            }
            for kpi in plan.kpis
        ],
        "tasks": [
            {
                "number": task.number,
                "section": task.section,
                "content": task.content,
                "lead_text": task.lead_text,
                "leads": list(task.leads),
                "coordinators_text": task.coordinators_text,
                "coordinators": list(task.coordinators),
                "timeframe": task.timeframe,
                "schedule": task.schedule.to_json(),
                "products": [{"name": p.name, "kind": p.kind} for p in task.products],
            }
            for task in plan.tasks
        ],
    }


def dump_plan_yaml(data: Mapping[str, Any]) -> str:
    """Return the text of a definition file for `data` (from plan_to_dict)."""
    body = yaml.safe_dump(
        dict(data), allow_unicode=True, sort_keys=False, width=1_000_000, default_flow_style=False
    )
    return _HEADER + body
