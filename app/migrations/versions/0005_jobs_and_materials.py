"""jobs and materials

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Enum("generate_items", name="job_kind"), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "running", "succeeded", "failed", "dead", name="job_status"),
            nullable=False,
        ),
        sa.Column("skill_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_jobs_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["skill_id"], ["skills.id"], name=op.f("fk_jobs_skill_id_skills"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_created_at"), "jobs", ["created_at"], unique=False)
    op.create_index(op.f("ix_jobs_created_by"), "jobs", ["created_by"], unique=False)
    op.create_index(op.f("ix_jobs_skill_id"), "jobs", ["skill_id"], unique=False)
    op.create_index("ix_jobs_status_deadline_at", "jobs", ["status", "deadline_at"], unique=False)
    op.create_table(
        "materials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("skill_id", sa.Uuid(), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["skill_id"],
            ["skills.id"],
            name=op.f("fk_materials_skill_id_skills"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"], ["users.id"], name=op.f("fk_materials_uploaded_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_materials")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_materials_storage_key")),
    )
    op.create_index(op.f("ix_materials_skill_id"), "materials", ["skill_id"], unique=False)
    op.create_index(op.f("ix_materials_uploaded_by"), "materials", ["uploaded_by"], unique=False)
    # Batch mode: plain ALTERs on Postgres, a copy-and-move on SQLite (the development default,
    # which cannot ALTER constraints).
    with op.batch_alter_table("items") as items:
        items.add_column(sa.Column("source_job_id", sa.Uuid(), nullable=True))
        items.create_index(op.f("ix_items_source_job_id"), ["source_job_id"], unique=False)
        items.create_foreign_key(
            op.f("fk_items_source_job_id_jobs"),
            "jobs",
            ["source_job_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("items") as items:
        items.drop_constraint(op.f("fk_items_source_job_id_jobs"), type_="foreignkey")
        items.drop_index(op.f("ix_items_source_job_id"))
        items.drop_column("source_job_id")
    op.drop_index(op.f("ix_materials_uploaded_by"), table_name="materials")
    op.drop_index(op.f("ix_materials_skill_id"), table_name="materials")
    op.drop_table("materials")
    op.drop_index("ix_jobs_status_deadline_at", table_name="jobs")
    op.drop_index(op.f("ix_jobs_skill_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_created_by"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_created_at"), table_name="jobs")
    op.drop_table("jobs")
    sa.Enum(name="job_status").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="job_kind").drop(op.get_bind(), checkfirst=True)
