"""The socket library internals that delivery relies on (app/transport.py) are still there.

When an upgrade of python-socketio or python-engineio removes or renames one of
them, this fails first and names it, instead of delivery breaking in silence.
"""

from importlib.metadata import version

from app import socketio, transport
from protocol import WEB_NAMESPACE, Events


def test_the_installed_socket_libraries_offer_every_internal_delivery_needs():
    installed = f"python-socketio {version('python-socketio')}, python-engineio {version('python-engineio')}"
    assert transport.missing_internals() == [], f"{installed}: app/transport.py needs updating"


def test_a_running_server_keeps_its_engineio_sockets_where_the_adapter_looks(app):
    """`eio.sockets` (a dict of sockets with a `queue`) is an instance attribute: look at a live server."""
    assert isinstance(socketio.server.eio.sockets, dict)
    queue = socketio.server.eio.create_queue()
    assert hasattr(queue, "qsize")


def test_an_event_is_encoded_once_as_a_socketio_event_packet():
    packets = transport.encode_event(WEB_NAMESPACE, Events.COMMAND_RESULT, {"seq": 1})
    assert len(packets) == 1
    assert packets[0].encode() == '42/web,["command_result",{"seq":1}]'


def test_result_emits_reach_the_delivery_hook_and_nothing_else_does(app):
    seen = []
    manager = transport.make_client_manager(seen.append, Events.COMMAND_RESULT, WEB_NAMESPACE)
    manager.set_server(socketio.server)
    manager.emit(Events.COMMAND_RESULT, {"seq": 7}, WEB_NAMESPACE, room="session:x")
    manager.emit(Events.COMMAND_STATE, {"state": "done"}, WEB_NAMESPACE, room="session:x")
    manager.emit(Events.COMMAND_RESULT, {"seq": 8}, "/agent", room="agent:x")
    assert seen == [{"seq": 7}]


def test_a_socket_that_is_not_connected_has_no_outlet(app):
    assert transport.Outlet.of("no-such-sid", WEB_NAMESPACE) is None
