"""webhook secrets sealed at rest; deleted endpoints and ended grace periods keep none

The key comes from the caller (`ledger.migrate.upgrade(..., keyring=...)`, which
`autostamp db upgrade`, `setup` and `up` pass from AUTOSTAMP_SECRET_KEY): a database with
plaintext secrets is not upgraded without it, so no plaintext is left behind. The checks
added here refuse plaintext from then on.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.errors import SecretKeyMissing
from ledger.sealing import Keyring, is_sealed
from ledger.webhook_secrets import SECRET_COLUMNS, open_secret, seal_secret

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKS = {
    "ck_webhook_endpoints_secret_sealed": "secret LIKE 'sealed.%'",
    "ck_webhook_endpoints_previous_secret_sealed": "previous_secret LIKE 'sealed.%'",
    "ck_webhook_endpoints_secret_while_live": "(secret IS NULL) = (deleted_at IS NOT NULL)",
    "ck_webhook_endpoints_no_previous_secret_deleted": "previous_secret IS NULL OR deleted_at IS NULL",
}
SECRETS = "SELECT id, secret, previous_secret FROM webhook_endpoints ORDER BY id FOR UPDATE"


def _keyring(needed_for: int) -> Keyring:
    keyring = op.get_context().config.attributes.get("secret_keyring")  # type: ignore[union-attr]
    if keyring is None:
        raise SecretKeyMissing(
            f"{needed_for} webhook secrets are to be sealed or opened: run `autostamp db "
            "upgrade` with AUTOSTAMP_SECRET_KEY set (see docs/webhooks.md)"
        )
    return keyring  # type: ignore[no-any-return]


def _needs(row: sa.Row[tuple[str, str | None, str | None]], change: str) -> bool:
    stored = (getattr(row, column) for column in SECRET_COLUMNS)
    return any(v is not None and is_sealed(v) == (change == "open") for v in stored)


def _rewrite(change: str) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(SECRETS)).all()
    todo = [row for row in rows if _needs(row, change)]
    if not todo:
        return
    keyring = _keyring(len(todo))
    for row in todo:
        values = {"id": row.id}
        for column in SECRET_COLUMNS:
            value = getattr(row, column)
            if value is not None and change == "seal" and not is_sealed(value):
                value = seal_secret(keyring, row.id, column, value)
            elif value is not None and change == "open" and is_sealed(value):
                value = open_secret(keyring, row.id, column, value)
            values[column] = value
        conn.execute(
            sa.text(
                "UPDATE webhook_endpoints SET secret = :secret, "
                "previous_secret = :previous_secret WHERE id = :id"
            ),
            values,
        )


def upgrade() -> None:
    # Refused before anything changes: a failing migration's earlier statements may stay.
    plaintext = [row for row in op.get_bind().execute(sa.text(SECRETS)) if _needs(row, "seal")]
    if plaintext:
        _keyring(len(plaintext))
    op.alter_column("webhook_endpoints", "secret", existing_type=sa.Text(), nullable=True)
    op.execute(
        "UPDATE webhook_endpoints SET secret = NULL, previous_secret = NULL, "
        "previous_secret_expires_at = NULL WHERE deleted_at IS NOT NULL"
    )
    op.execute(
        "UPDATE webhook_endpoints SET previous_secret = NULL, previous_secret_expires_at = NULL "
        "WHERE previous_secret_expires_at <= now()"
    )
    _rewrite("seal")
    for name, condition in CHECKS.items():
        op.create_check_constraint(op.f(name), "webhook_endpoints", condition)


def downgrade() -> None:
    sealed = [row for row in op.get_bind().execute(sa.text(SECRETS)) if _needs(row, "open")]
    if sealed:
        _keyring(len(sealed))
    for name in CHECKS:
        op.drop_constraint(op.f(name), "webhook_endpoints", type_="check")
    _rewrite("open")
    # A deleted endpoint's secret is gone for good; the old schema wants some text there.
    op.execute("UPDATE webhook_endpoints SET secret = '' WHERE secret IS NULL")
    op.alter_column("webhook_endpoints", "secret", existing_type=sa.Text(), nullable=False)
