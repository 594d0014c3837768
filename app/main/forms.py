from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from protocol.events import PROJECT_PERMISSION_MODES


class AgentForm(FlaskForm):
    name = StringField("Agent name", validators=[DataRequired(), Length(max=64)])
    submit = SubmitField("Add agent")


class ProjectForm(FlaskForm):
    name = StringField("Project name", validators=[DataRequired(), Length(max=128)])
    agent_id = SelectField("Agent", validators=[DataRequired()])
    path = StringField("Directory on that machine", validators=[DataRequired(), Length(max=1024)])
    permission_mode = SelectField(
        "Permission mode", choices=[SelectChoice(mode) for mode in PROJECT_PERMISSION_MODES]
    )
    submit = SubmitField("Add project")


class AgentActionForm(FlaskForm):
    """An empty form: just the CSRF token for revoke and rotate buttons."""


def agent_choices(agents):
    return [SelectChoice(agent.id, agent.name) for agent in agents]


class ShareForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    role = SelectField("Role", choices=[SelectChoice("operator"), SelectChoice("viewer")])


class LinkForm(FlaskForm):
    session_id = SelectField("Session", validators=[DataRequired()])
    hours = SelectField(
        "Valid for",
        choices=[SelectChoice("1", "1 hour"), SelectChoice("24", "1 day"), SelectChoice("168", "1 week")],
        default="24",
    )


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=256)])
