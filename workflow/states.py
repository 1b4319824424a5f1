"""Stable stored names of the lifecycle states and roles: a public contract, never renamed."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    AWAITING_SCHEDULE = "awaiting_schedule"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    EVIDENCE_SUBMITTED = "evidence_submitted"
    REVIEWED = "reviewed"
    ACCEPTED = "accepted"
    RETURNED = "returned"
    CANCELLED = "cancelled"


TASK_STATE_LABELS: dict[TaskState, str] = {
    TaskState.AWAITING_SCHEDULE: "Chờ xác định thời hạn",
    TaskState.ASSIGNED: "Đã giao",
    TaskState.IN_PROGRESS: "Đang thực hiện",
    TaskState.EVIDENCE_SUBMITTED: "Đã nộp sản phẩm",
    TaskState.REVIEWED: "Đã thẩm định",
    TaskState.ACCEPTED: "Đã nghiệm thu",
    TaskState.RETURNED: "Trả lại để hoàn thiện",
    TaskState.CANCELLED: "Đã hủy",
}


class RequestState(StrEnum):
    """A coordination request asked of a coordinating unit."""

    REQUESTED = "requested"
    PROVIDED = "provided"
    DECLINED = "declined"


class Role(StrEnum):
    MEMBER = "member"
    HEAD = "head"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    WARD_LEADER = "ward_leader"
    AUDITOR = "auditor"
    ADMIN = "admin"


ROLE_LABELS: dict[Role, str] = {
    Role.MEMBER: "Cán bộ đơn vị",
    Role.HEAD: "Trưởng đơn vị",
    Role.REVIEWER: "Cán bộ thẩm định (VHXH)",
    Role.APPROVER: "Người phê duyệt (Trưởng phòng VHXH)",
    Role.WARD_LEADER: "Lãnh đạo UBND phường",
    Role.AUDITOR: "Kiểm toán viên",
    Role.ADMIN: "Quản trị hệ thống",
}


class RemarkKind(StrEnum):
    COMMENT = "comment"
    FINDING = "finding"
    DECISION = "decision"
    EXPLANATION = "explanation"


REMARK_KIND_LABELS: dict[RemarkKind, str] = {
    RemarkKind.COMMENT: "ý kiến",
    RemarkKind.FINDING: "kết quả thẩm định",
    RemarkKind.DECISION: "quyết định",
    RemarkKind.EXPLANATION: "giải trình",
}


def check_in(column: str, values: type[StrEnum]) -> str:
    """SQL for a CHECK constraint that keeps a column within an enum's stored values."""
    quoted = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({quoted})"
