"""Fixtures of the security tests: a second tenant and in-process sockets."""

import pytest

from tests.conftest import make_seed
from tests.security.sockets import Sockets


@pytest.fixture
def other(app, tmp_path):
    """A second user, bob, with an agent and a project of his own."""
    path = tmp_path / "bob"
    path.mkdir()
    return make_seed(app, str(path), username="bob", agent_name="bobs-laptop")


@pytest.fixture
def sockets(app):
    opened = Sockets(app)
    yield opened
    opened.close()
