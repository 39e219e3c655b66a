from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.chat import RequestKind, RequestStatus
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Note',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('session', fields.ForeignKeyField('models.Session', source_field='session_id', db_constraint=True, to_field='id', related_name='notes', on_delete=OnDelete.CASCADE)),
                ('text', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'notes', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PendingRequest',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('session', fields.ForeignKeyField('models.Session', source_field='session_id', db_constraint=True, to_field='id', related_name='requests', on_delete=OnDelete.CASCADE)),
                ('turn_id', fields.CharField(max_length=36)),
                ('kind', fields.CharEnumField(description='confirmation: confirmation\nquestion: question', enum_type=RequestKind, max_length=12)),
                ('seq', fields.IntField()),
                ('tool', fields.CharField(null=True, max_length=64)),
                ('arguments', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('prompt', fields.TextField(description='The question, or the reason a confirmation is needed.', unique=False)),
                ('timeout_s', fields.FloatField()),
                ('status', fields.CharEnumField(default=RequestStatus.open, description='open: open\napproved: approved\ndenied: denied\nanswered: answered\ntimeout: timeout\ncancelled: cancelled', enum_type=RequestStatus, max_length=9)),
                ('answer', fields.TextField(null=True, description="The human's reply, or a denial's reason.", unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'pending_requests', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A confirmation or question a turn put to the human, and how it ended.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Message',
            name='usage',
            field=fields.JSONField(null=True, description="An assistant message's tokens: input_tokens, output_tokens.", encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
