"""Who may do what to a task instance: the one place that decides (invariant 4).

The engine asks `refusal(...)` before every action and `enabled_events` asks it for the
buttons a person sees; pages, the API and the CLI never decide on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflow.errors import DomainError
from workflow.states import Role

VHXH = "VHXH"  # Phòng Văn hóa - Xã hội: reviews and approves everyone's work


@dataclass(frozen=True)
class Person:
    """The acting person as the rules see them."""

    id: int
    username: str
    unit: str | None
    roles: frozenset[str]
    organization_id: int = 0

    def has(self, role: Role) -> bool:
        return role.value in self.roles

    def member_of(self, unit: str) -> bool:
        return self.unit == unit and (self.has(Role.MEMBER) or self.has(Role.HEAD))

    def head_of(self, unit: str) -> bool:
        return self.unit == unit and self.has(Role.HEAD)


@dataclass(frozen=True)
class Work:
    """A task instance as the rules see it: its lead unit and its current submission."""

    lead_unit: str
    state: str
    organization_id: int
    submitted_by: int | None
    reviewed_by: int | None
    contributors: frozenset[int]  # uploaders of the evidence in the current submission


@dataclass(frozen=True)
class Policy:
    submit_requires_head: bool = True
    outstanding_contributions: str = "explain"  # or "block"


def _not_permitted(message: str) -> DomainError:
    return DomainError("not_permitted", message)


def decider_role_for(unit: str) -> Role:
    """Nobody decides on their own unit's work: VHXH's own work goes to the ward leader."""
    return Role.WARD_LEADER if unit == VHXH else Role.APPROVER


def decider_role(work: Work) -> Role:
    return decider_role_for(work.lead_unit)


def _can_decide(person: Person, work: Work) -> DomainError | None:
    role = decider_role(work)
    if not person.has(role) or (role is Role.APPROVER and person.unit == work.lead_unit):
        if role is Role.WARD_LEADER:
            return _not_permitted(
                "Nhiệm vụ do Phòng Văn hóa - Xã hội chủ trì do Lãnh đạo UBND phường quyết định "
                "nghiệm thu hoặc trả lại."
            )
        return _not_permitted(
            "Chỉ Trưởng phòng Văn hóa - Xã hội (người phê duyệt) được quyết định nghiệm thu "
            "hoặc trả lại."
        )
    return _not_own_submission(person, work, "quyết định")


def _not_own_submission(person: Person, work: Work, verb: str) -> DomainError | None:
    if person.id == work.submitted_by:
        return DomainError(
            "self_review", f"Bạn đã nộp lần này nên không được {verb} sản phẩm của chính mình."
        )
    if person.id in work.contributors:
        return DomainError(
            "self_review", f"Bạn đã cung cấp tài liệu cho lần nộp này nên không được {verb}."
        )
    return None


def _can_review(person: Person, work: Work) -> DomainError | None:
    if not person.has(Role.REVIEWER):
        return _not_permitted("Chỉ cán bộ thẩm định của Phòng Văn hóa - Xã hội được thẩm định.")
    return _not_own_submission(person, work, "thẩm định")


def _lead_member(person: Person, work: Work, what: str) -> DomainError | None:
    if person.member_of(work.lead_unit):
        return None
    return _not_permitted(f"Chỉ cán bộ của đơn vị chủ trì ({work.lead_unit}) được {what}.")


def _scheduler(person: Person) -> bool:
    vhxh_lead = person.unit == VHXH and (person.has(Role.HEAD) or person.has(Role.APPROVER))
    return vhxh_lead or person.has(Role.WARD_LEADER)


def refusal(action: str, person: Person, work: Work, policy: Policy) -> DomainError | None:
    """Why `person` may not take `action` on `work` now, or None when they may.

    Actions are the lifecycle's events plus add_evidence, withdraw_evidence, explain,
    reassign_within_unit, reassign_unit, request_contribution and comment.
    """
    if person.organization_id != work.organization_id:
        # Unit codes repeat in every ward: nobody acts on another ward's work.
        return _not_permitted("Nhiệm vụ này thuộc phường khác.")
    if action in ("start", "rework"):
        return _lead_member(person, work, "thực hiện nhiệm vụ này")
    if action in ("add_evidence", "withdraw_evidence", "explain", "request_contribution"):
        return _lead_member(person, work, "cập nhật sản phẩm của nhiệm vụ này")
    if action == "submit":
        if person.head_of(work.lead_unit):
            return None
        if not policy.submit_requires_head and person.member_of(work.lead_unit):
            return None
        return _not_permitted(
            f"Chỉ Trưởng đơn vị chủ trì ({work.lead_unit}) được nộp sản phẩm của nhiệm vụ."
        )
    if action == "review":
        return _can_review(person, work)
    if action == "return_for_rework":
        # From evidence_submitted the reviewer returns plainly incomplete work; after review
        # the decision is the approver's (or the ward leader's for VHXH's own tasks).
        if work.state == "evidence_submitted":
            return _can_review(person, work)
        return _decision(person, work)
    if action == "accept":
        return _decision(person, work)
    if action == "schedule":
        if _scheduler(person):
            return None
        return _not_permitted(
            "Chỉ lãnh đạo Phòng Văn hóa - Xã hội hoặc Lãnh đạo UBND phường được xác định thời hạn."
        )
    if action == "cancel":
        if person.has(Role.WARD_LEADER):
            return None
        return _not_permitted("Chỉ Lãnh đạo UBND phường được hủy nhiệm vụ.")
    if action == "reassign_within_unit":
        if person.head_of(work.lead_unit):
            return None
        return _not_permitted("Chỉ Trưởng đơn vị được phân công lại trong đơn vị.")
    if action == "reassign_unit":
        if _scheduler(person):
            return None
        return _not_permitted(
            "Chỉ lãnh đạo Phòng Văn hóa - Xã hội hoặc Lãnh đạo UBND phường được giao nhiệm vụ "
            "cho đơn vị khác."
        )
    if action == "comment":
        involved = person.member_of(work.lead_unit) or person.unit == VHXH
        if involved or person.has(Role.WARD_LEADER):
            return None
        return _not_permitted("Bạn không tham gia nhiệm vụ này nên không được ghi ý kiến.")
    return DomainError("unknown_action", f"Không có thao tác “{action}”.")


def _decision(person: Person, work: Work) -> DomainError | None:
    refused = _can_decide(person, work)
    if refused is not None:
        return refused
    if person.id == work.reviewed_by:
        return DomainError(
            "same_reviewer",
            "Người thẩm định và người quyết định của một lần nộp phải là hai người khác nhau.",
        )
    return None


def answer_refusal(person: Person, asked_unit: str, organization_id: int) -> DomainError | None:
    """Why `person` may not answer a contribution request asked of `asked_unit`, or None."""
    if person.organization_id == organization_id and person.member_of(asked_unit):
        return None
    return _not_permitted(f"Chỉ cán bộ của {asked_unit} được trả lời đề nghị phối hợp này.")


def _vhxh_staff(person: Person) -> bool:
    return person.unit == VHXH and (
        person.has(Role.HEAD) or person.has(Role.APPROVER) or person.has(Role.REVIEWER)
    )


def plan_refusal(action: str, person: Person, organization_id: int) -> DomainError | None:
    """Why `person` may not take a plan-level action, or None when they may.

    propose_amendment: Phòng VHXH (its head, approver or reviewers) proposes a change to the
    plan; decide_amendment: the ward leader approves or rejects it.
    """
    if person.organization_id != organization_id:
        return _not_permitted("Kế hoạch này thuộc phường khác.")
    if action == "propose_amendment":
        if _vhxh_staff(person):
            return None
        return _not_permitted("Chỉ Phòng Văn hóa - Xã hội được đề xuất điều chỉnh kế hoạch.")
    if action == "decide_amendment":
        if person.has(Role.WARD_LEADER):
            return None
        return _not_permitted("Chỉ Lãnh đạo UBND phường được phê duyệt điều chỉnh kế hoạch.")
    return DomainError("unknown_action", f"Không có thao tác “{action}”.")


# Pages and API areas beyond a single task: who may open them.
AREA_RULES: dict[str, tuple[Role, ...]] = {
    # the review queue: VHXH's reviewers and approver, and the ward leader (VHXH's own work)
    "review_queue": (Role.REVIEWER, Role.APPROVER, Role.WARD_LEADER),
    # the leadership's dashboard: the ward leader, VHXH (it reports on the plan), auditors
    "dashboard": (Role.WARD_LEADER, Role.APPROVER, Role.REVIEWER, Role.AUDITOR, Role.HEAD),
    # the audit log, exports, receipts and "verify now"
    "audit": (Role.AUDITOR, Role.WARD_LEADER, Role.ADMIN),
    # units, users, roles, password resets
    "admin": (Role.ADMIN,),
    # the evaluation, self-inspection coverage, sampling and inspections of the whole ward
    "oversight": (Role.WARD_LEADER, Role.APPROVER, Role.REVIEWER, Role.AUDITOR, Role.HEAD),
}

_AREA_NAMES = {
    "review_queue": "hàng chờ thẩm định",
    "dashboard": "bảng điều hành",
    "audit": "nhật ký kiểm toán",
    "admin": "quản trị hệ thống",
    "oversight": "đánh giá, tự kiểm tra và kiểm tra",
}


def area_refusal(area: str, person: Person) -> DomainError | None:
    """Why `person` may not open an area (review_queue, dashboard, audit, admin), or None."""
    roles = AREA_RULES.get(area)
    if roles is None:
        return DomainError("unknown_action", f"Không có mục “{area}”.")
    if any(person.has(role) for role in roles):
        return None
    return _not_permitted(f"Bạn không có quyền truy cập {_AREA_NAMES[area]}.")


# --- evaluation, self-inspection and inspection -------------------------------------------


def oversight_refusal(
    action: str, person: Person, organization_id: int, unit: str | None = None
) -> DomainError | None:
    """Why `person` may not take an evaluation, self-inspection or inspection action, or None.

    `unit` is the unit concerned: the self-inspecting unit, the inspected unit, or the lead
    unit of the KPI's task. Actions:

    - measure_kpi: members of the KPI task's lead unit, or VHXH's staff;
    - open_self_inspections: VHXH's head or approver, or the ward leader;
    - fill_self_inspection: members of the unit; submit_self_inspection: its head;
    - decide_self_inspection (acknowledge or return): the approver (head of VHXH), and for
      VHXH's own self-inspection the ward leader: nobody decides on their own unit's work;
    - close_year: the ward leader;
    - draw_sample: VHXH's head or approver, or the ward leader;
    - plan_inspection, record_findings: VHXH's staff, or the ward leader; for an inspection of
      VHXH itself only the ward leader (nobody inspects their own unit);
    - conclude_inspection (sign the Thông báo kết luận): the ward leader;
    - close_inspection: VHXH's head or approver, or the ward leader, when VHXH is not the
      inspected unit; otherwise the ward leader.
    """
    if person.organization_id != organization_id:
        return _not_permitted("Nội dung này thuộc phường khác.")
    leader = person.has(Role.WARD_LEADER)
    if action == "measure_kpi":
        if _vhxh_staff(person) or (unit is not None and person.member_of(unit)):
            return None
        return _not_permitted(
            "Chỉ đơn vị chủ trì nhiệm vụ của chỉ tiêu hoặc Phòng Văn hóa - Xã hội được nhập "
            "kết quả đo chỉ tiêu."
        )
    if action in ("open_self_inspections", "draw_sample"):
        if _scheduler(person):
            return None
        what = "mở kỳ tự kiểm tra" if action == "open_self_inspections" else "chọn mẫu kiểm tra"
        return _not_permitted(
            f"Chỉ lãnh đạo Phòng Văn hóa - Xã hội hoặc Lãnh đạo UBND phường được {what}."
        )
    if action == "fill_self_inspection":
        if unit is not None and person.member_of(unit):
            return None
        return _not_permitted(f"Chỉ cán bộ của {unit} được điền phiếu tự kiểm tra của đơn vị.")
    if action == "submit_self_inspection":
        if unit is not None and person.head_of(unit):
            return None
        return _not_permitted(f"Chỉ Trưởng đơn vị ({unit}) được gửi báo cáo tự kiểm tra.")
    if action == "decide_self_inspection":
        if unit == VHXH:
            if leader:
                return None
            return _not_permitted(
                "Kết quả tự kiểm tra của Phòng Văn hóa - Xã hội do Lãnh đạo UBND phường xác nhận."
            )
        if person.has(Role.APPROVER) and person.unit != unit:
            return None
        return _not_permitted(
            "Chỉ Trưởng phòng Văn hóa - Xã hội được xác nhận hoặc trả lại kết quả tự kiểm tra."
        )
    if action == "close_year":
        if leader:
            return None
        return _not_permitted("Chỉ Lãnh đạo UBND phường được khóa sổ năm cải cách hành chính.")
    if action in ("plan_inspection", "record_findings", "close_inspection"):
        staff = _vhxh_staff(person) if action != "close_inspection" else _scheduler(person)
        if leader or (staff and unit != VHXH):
            return None
        if unit == VHXH:
            return _not_permitted(
                "Việc kiểm tra Phòng Văn hóa - Xã hội do Lãnh đạo UBND phường thực hiện."
            )
        return _not_permitted(
            "Chỉ Phòng Văn hóa - Xã hội hoặc Lãnh đạo UBND phường được thực hiện việc kiểm tra."
        )
    if action == "conclude_inspection":
        if leader:
            return None
        return _not_permitted("Chỉ Lãnh đạo UBND phường được ban hành thông báo kết luận kiểm tra.")
    return DomainError("unknown_action", f"Không có thao tác “{action}”.")


# --- periodic reports -------------------------------------------------------------------------


def report_refusal(action: str, person: Person, organization_id: int) -> DomainError | None:
    """Why `person` may not generate or read the ward's periodic reform reports, or None.

    generate_report: Phòng VHXH's staff (it drafts the reports, appendix task 2) and the ward
    leader; read_reports (list, download): those, and everyone of the oversight area.
    """
    if person.organization_id != organization_id:
        return _not_permitted("Báo cáo này thuộc phường khác.")
    drafter = person.has(Role.WARD_LEADER) or _vhxh_staff(person) or person.member_of(VHXH)
    if action == "generate_report":
        if drafter:
            return None
        return _not_permitted(
            "Chỉ Phòng Văn hóa - Xã hội hoặc Lãnh đạo UBND phường được lập báo cáo định kỳ."
        )
    if action == "read_reports":
        if drafter or area_refusal("oversight", person) is None:
            return None
        return _not_permitted("Bạn không có quyền xem báo cáo định kỳ cải cách hành chính.")
    return DomainError("unknown_action", f"Không có thao tác “{action}”.")
