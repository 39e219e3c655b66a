from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_tools_usage')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Session',
            name='seq_reserved',
            field=fields.IntField(default=0, db_default=0, description='Seqs up to this may have reached a client: a turn numbers on above it.'),
        ),
    ]
