"""Who may see or do what: the one place access to projects and sessions is decided.

Roles, from least to most: a `viewer` sees a shared project's sessions live; an
`operator` also runs, stops and answers permission requests; the `owner` (the
project's creator) also shares. A read-only link sees one session and nothing else.
Every event and page asks here, against the database as it is now, so that
unsharing or revoking takes effect at the next event (and app/sockets/web.py's
access watch takes the live streams away within a second).
"""

from app import db
from app.models import ChatSession, Project, ProjectMember, SessionLink, hash_token, utcnow
from protocol import ProtocolError

ROLES = ("viewer", "operator", "owner")
MEMBER_ROLES = ("viewer", "operator")
# What each need takes, as the least role that has it.
NEEDS = {"view": "viewer", "operate": "operator", "own": "owner"}


class NoAccess(ProtocolError):
    """`not_found` when the thing is not the user's to see at all, `forbidden` when the role is too low.

    A ProtocolError, so that socket events answer it as is; pages turn it into 404 or 403.
    """


def role_of(user_id, project):
    """The user's role in the project, or None."""
    if project.user_id == user_id:
        return "owner"
    member = db.session.get(ProjectMember, (project.id, user_id))
    return member.role if member else None


def allows(role, need):
    return role is not None and ROLES.index(role) >= ROLES.index(NEEDS[need])


def project_for(user_id, project_id, need="view"):
    """The project if the user's role has `need`; NoAccess otherwise."""
    project = db.session.get(Project, project_id) if project_id else None
    _check(project and role_of(user_id, project), need, "project")
    return project


def session_for(user_id, session_id, need="view"):
    """The session if the user's role in its project has `need`; NoAccess otherwise."""
    session = db.session.get(ChatSession, session_id) if session_id else None
    _check(session and role_of(user_id, session.project), need, "session")
    return session


def _check(role, need, what):
    if not role:
        raise NoAccess("not_found", f"no such {what}")
    if not allows(role, need):
        raise NoAccess("forbidden", f"a {role} of this project may not do that")


def link_for(token, now=None):
    """The usable read-only link with this token, or None."""
    if not token or not isinstance(token, str) or len(token) > 128:
        return None
    link = db.session.scalar(db.select(SessionLink).filter_by(token_hash=hash_token(token)))
    return link if link is not None and link.usable(now or utcnow()) else None


def projects_of(user_id):
    """The user's own projects and those shared with them, with the role in each."""
    own = db.session.scalars(db.select(Project).filter_by(user_id=user_id).order_by(Project.name)).all()
    shared = db.session.execute(
        db.select(Project, ProjectMember.role)
        .join(ProjectMember, ProjectMember.project_id == Project.id)
        .filter(ProjectMember.user_id == user_id)
        .order_by(Project.name)
    ).all()
    return [(project, "owner") for project in own] + [(project, role) for project, role in shared]


def people_of(project):
    """The ids of everyone with a role in the project: the owner first, then its members."""
    members = db.session.scalars(db.select(ProjectMember.user_id).filter_by(project_id=project.id)).all()
    return [project.user_id, *members]


def session_for_reader(user_id, link_session_id, session_id):
    """The session a socket may follow: its user's role allows viewing, or it is its link's session."""
    if user_id is not None:
        return session_for(user_id, session_id)
    if session_id != link_session_id:
        raise NoAccess("not_found", "no such session")
    return db.session.get(ChatSession, session_id)


def usable_links(link_ids, now=None):
    """The ids among `link_ids` of links neither revoked nor expired."""
    if not link_ids:
        return set()
    now = now or utcnow()
    return set(
        db.session.scalars(
            db.select(SessionLink.id).filter(
                SessionLink.id.in_(link_ids), SessionLink.revoked_at.is_(None), SessionLink.expires_at > now
            )
        )
    )


def lost_follows(follows):
    """Of `follows` [(key, user_id, link_session_id, session_id)], the (key, session_id) no longer allowed.

    Three queries whatever the number of follows: sessions' projects, and memberships.
    """
    session_ids = {session_id for *_, session_id in follows}
    if not session_ids:
        return []
    projects = {
        session_id: (project_id, owner_id)
        for session_id, project_id, owner_id in db.session.execute(
            db.select(ChatSession.id, Project.id, Project.user_id)
            .join(Project, Project.id == ChatSession.project_id)
            .filter(ChatSession.id.in_(session_ids))
        )
    }
    members = set(
        db.session.execute(
            db.select(ProjectMember.project_id, ProjectMember.user_id).filter(
                ProjectMember.project_id.in_({project_id for project_id, _ in projects.values()})
            )
        ).all()
    )
    lost = []
    for key, user_id, link_session_id, session_id in follows:
        if session_id not in projects:
            # Not committed yet: the sender of a command follows its new session before the
            # commit that creates it (relay.execute_command), so that it misses nothing of it.
            # Nothing is sent to a session that does not exist; the next check judges it.
            continue
        project_id, owner_id = projects[session_id]
        if user_id is None:
            allowed = session_id == link_session_id
        else:
            allowed = user_id == owner_id or (project_id, user_id) in members
        if not allowed:
            lost.append((key, session_id))
    return lost
