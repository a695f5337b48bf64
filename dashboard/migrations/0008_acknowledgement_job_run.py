from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0007_trackedrun_repo_and_source_hint"),
    ]

    operations = [
        migrations.AlterField(
            model_name="acknowledgement",
            name="target",
            field=models.CharField(
                choices=[("run", "run"), ("sandbox", "sandbox"), ("job_run", "job run")], max_length=10
            ),
        ),
        migrations.AlterField(
            model_name="acknowledgement",
            name="target_id",
            field=models.UUIDField(help_text="The run id, the sandbox id or the job run id."),
        ),
    ]
