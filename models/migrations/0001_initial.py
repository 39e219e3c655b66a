from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.chat import MessageStatus, new_session_id
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('is_admin', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'api_keys', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Session',
            fields=[
                ('id', fields.CharField(primary_key=True, default=new_session_id, unique=True, db_index=True, max_length=36)),
                ('owner', fields.ForeignKeyField('models.ApiKey', source_field='owner_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('title', fields.CharField(default='', max_length=200)),
                ('metadata', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'sessions', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('session', fields.ForeignKeyField('models.Session', source_field='session_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('seq', fields.IntField()),
                ('type', fields.CharField(max_length=32)),
                ('turn_id', fields.CharField(null=True, max_length=36)),
                ('frame', fields.TextField(unique=False)),
            ],
            options={'table': 'events', 'app': 'models', 'unique_together': (('session', 'seq'),), 'pk_attr': 'id', 'table_description': 'One logged server frame, stored as the exact JSON the clients received.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Message',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('session', fields.ForeignKeyField('models.Session', source_field='session_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('turn_id', fields.CharField(null=True, max_length=36)),
                ('role', fields.CharField(max_length=16)),
                ('content', fields.TextField(unique=False)),
                ('status', fields.CharEnumField(default=MessageStatus.complete, description='complete: complete\ncancelled: cancelled\nerror: error', enum_type=MessageStatus, max_length=9)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'messages', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Skill',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.ApiKey', source_field='owner_id', db_constraint=True, to_field='id', related_name='skills', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=100)),
                ('keywords', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('description', fields.TextField(default='', unique=False)),
                ('instructions', fields.TextField(default='', unique=False)),
                ('tools', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('experts', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'skills', 'app': 'models', 'unique_together': (('owner', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
