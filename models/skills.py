"""Keyword skills registered over REST (plugin skills are not stored)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.auth import ApiKey


class Skill(Model):
    id = fields.IntField(primary_key=True)
    owner: fields.ForeignKeyRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="skills", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=100)
    keywords = fields.JSONField(default=list)
    description = fields.TextField(default="")
    instructions = fields.TextField(default="")
    tools = fields.JSONField(default=list)
    experts = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "skills"
        unique_together = (("owner", "name"),)
        ordering = ["name"]

    def __str__(self) -> str:
        return f"Skill({self.name})"
