from flask_wtf import FlaskForm
from wtforms import BooleanField, SubmitField


class NotificationSettingsForm(FlaskForm):
    permission = BooleanField("Claude Code asks for permission to use a tool")
    finished = BooleanField("A command ends (done, failed or stopped) after running a while")
    submit = SubmitField("Save")
