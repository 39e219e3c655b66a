from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_seq_reserved')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ApiKey',
            name='lookup_id',
            field=fields.CharField(null=True, unique=True, description='The start of key_hash, by which a presented key finds its row (null for a key stored before keyed hashes, until its first use).', max_length=16),
        ),
    ]
