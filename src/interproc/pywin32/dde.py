"""``dde``: pywin32's DDE module on interproc.dde.

Server side: ``CreateServer()``, ``server.AddTopic(topic)``, ``server.Create(name)``;
topics from ``CreateTopic(name)`` / ``CreateServerSystemTopic()`` get items from
``CreateStringItem(name)`` whose ``SetData(value)`` publishes the value (warm
and hot links hear about it).  As in pywin32, a topic is usually wrapped in an
object (``pywin.mfc.object.Object``-style: the wrapper keeps the topic in
``_obj_``) whose ``Exec(cmd)`` and ``Poke(item, data)`` methods are called.

Client side: ``CreateConversation(server)``, ``conv.ConnectTo(service, topic)``,
``Request(item)``, ``Poke(item, data)``, ``Exec(cmd)``.

Differs from Windows: a topic's ``Request(item)`` method is not called —
requests are answered from the items' data (interproc.dde serves requests from
its store); there is no MFC message pump to run (the server serves in threads).
"""

from __future__ import annotations

import threading
from typing import Any

from .. import dde as _dde
from .._errors import ChannelClosed, NotFound, PermissionDenied, RemoteError, Timeout

__all__ = ["CreateConversation", "CreateServer", "CreateServerSystemTopic", "CreateStringItem",
           "CreateTopic", "error"]


class error(Exception):  # noqa: N801 - pywin32's dde.error
    """A DDE failure (pywin32 raises ``dde.error`` with a message)."""


#: Application default timeout of pywin32 DDE transactions (ms), as in its sources' spirit.
TIMEOUT = 5.0


class PyDDEStringItem:
    def __init__(self, name: str) -> None:
        self.name = name
        self.topic: PyDDETopic | None = None
        self.value = ""

    def SetData(self, data: Any) -> None:  # noqa: N802
        self.value = data
        if self.topic is not None and self.topic.server is not None:
            self.topic.server._publish(self.topic.name, self.name, data)

    def Destroy(self) -> None:  # noqa: N802
        pass


class PyDDETopic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.items: dict[str, PyDDEStringItem] = {}
        self.server: PyDDEServer | None = None

    def AddItem(self, item: PyDDEStringItem) -> None:  # noqa: N802
        item.topic = self
        self.items[item.name] = item
        if self.server is not None:
            self.server._publish(self.name, item.name, item.value)

    def GetName(self) -> str:  # noqa: N802
        return self.name

    def Destroy(self) -> None:  # noqa: N802
        pass


class PyDDEServer:
    def __init__(self) -> None:
        self._srv: _dde.Server | None = None
        self._topics: dict[str, tuple[PyDDETopic, Any]] = {}
        self._lock = threading.Lock()

    def AddTopic(self, topic: Any) -> None:  # noqa: N802
        """``topic``: a PyDDETopic, or a wrapper with the topic in ``_obj_`` and Exec/Poke methods."""
        inner = getattr(topic, "_obj_", topic)
        if not isinstance(inner, PyDDETopic):
            raise TypeError(f"AddTopic needs a topic from dde.CreateTopic, not {type(inner).__name__}")
        inner.server = self
        self._topics[inner.name] = (inner, topic)
        if self._srv is not None:
            self._install(inner)

    def _install(self, topic: PyDDETopic) -> None:
        if topic.name == "System":
            return
        assert self._srv is not None
        self._srv.add_topic(topic.name)
        for item in topic.items.values():
            self._srv.set(topic.name, item.name, item.value)

    def _publish(self, topic: str, item: str, value: Any) -> None:
        if self._srv is not None and topic != "System":
            self._srv.set(topic, item, value)

    def Create(self, name: str, filterFlags: int = 0) -> None:  # noqa: N802,N803
        """Register the service ``name`` and start serving (no message pump needed)."""
        try:
            srv = _dde.Server(name)
        except Exception as exc:
            raise error(f"The server could not be created: {exc}") from None
        srv.on_execute = self._on_execute
        srv.on_poke = self._on_poke
        self._srv = srv
        for topic, _ in self._topics.values():
            self._install(topic)
        srv.start()

    def _handler(self, topic: str) -> Any:
        got = self._topics.get(topic) or self._topics.get("System")
        return got[1] if got else None

    def _on_execute(self, topic: str, command: str) -> Any:
        handler = self._handler(topic)
        fn = getattr(handler, "Exec", None)
        if fn is None:
            raise PermissionDenied(f"topic {topic!r} has no Exec")
        fn(command)
        return None

    def _on_poke(self, topic: str, item: str, value: Any) -> Any:
        handler = self._handler(topic)
        fn = getattr(handler, "Poke", None)
        if fn is None:
            return False  # DDE_FNOTPROCESSED
        return fn(item, value) is not False

    def Destroy(self) -> None:  # noqa: N802
        srv, self._srv = self._srv, None
        if srv is not None:
            srv.close()

    Shutdown = Destroy


class PyDDEConv:
    def __init__(self, server: PyDDEServer | None) -> None:
        self._conv: Any = None

    def ConnectTo(self, service: str, topic: str) -> None:  # noqa: N802
        try:
            self._conv = _dde.connect(service, topic, timeout=TIMEOUT)
        except (NotFound, Timeout):
            raise error("ConnectTo failed") from None

    def Connected(self) -> int:  # noqa: N802
        return int(self._conv is not None and not getattr(self._conv, "closed", False))

    def _c(self) -> Any:
        if self._conv is None:
            raise error("The conversation is not connected")
        return self._conv

    def Request(self, item: str) -> str:  # noqa: N802
        try:
            value = self._c().request(item, timeout=TIMEOUT)
        except (NotFound, Timeout, ChannelClosed) as exc:
            raise error(f"Request failed: {exc}") from None
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    def Poke(self, item: str, data: Any = "") -> None:  # noqa: N802
        try:
            self._c().poke(item, data)
        except (PermissionDenied, RemoteError, Timeout, ChannelClosed) as exc:
            raise error(f"Poke failed: {exc}") from None

    def Exec(self, cmd: str) -> None:  # noqa: N802
        try:
            self._c().execute(cmd)
        except (PermissionDenied, RemoteError, Timeout, ChannelClosed) as exc:
            raise error(f"Exec failed: {exc}") from None

    def Disconnect(self) -> None:  # noqa: N802
        conv, self._conv = self._conv, None
        if conv is not None:
            conv.close()


def CreateServer() -> PyDDEServer:  # noqa: N802
    return PyDDEServer()


def CreateTopic(name: str) -> PyDDETopic:  # noqa: N802
    return PyDDETopic(name)


def CreateServerSystemTopic() -> PyDDETopic:  # noqa: N802
    return PyDDETopic("System")


def CreateStringItem(name: str) -> PyDDEStringItem:  # noqa: N802
    return PyDDEStringItem(name)


def CreateConversation(server: PyDDEServer | None = None) -> PyDDEConv:  # noqa: N802
    return PyDDEConv(server)
