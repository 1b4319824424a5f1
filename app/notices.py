"""Vietnamese notices that the command line, the pages and the API give alike (no rule)."""

from __future__ import annotations

# A change saved with an audit entry that the database built otherwise than prepared
# (audit.ledger.CommittedMismatchError): an integrity alarm, after the COMMIT.
AUDIT_MISMATCH = (
    "Cảnh báo về tính toàn vẹn của nhật ký kiểm toán: thao tác ĐÃ được lưu, nhưng mục nhật ký "
    "mà cơ sở dữ liệu ghi cho thao tác này không khớp với mục đã chuẩn bị. Đừng thực hiện lại "
    "thao tác này."
)
# As the pages and the API say it (the command line names the commands instead).
AUDIT_MISMATCH_ON_WEB = (
    AUDIT_MISMATCH + " Hãy báo ngay cho quản trị hệ thống để kiểm tra nhật ký kiểm toán."
)
