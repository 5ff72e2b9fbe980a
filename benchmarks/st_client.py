"""A scripted Streamlit session: the app's websocket protocol spoken directly, no browser.

benchmarks/load.py uses it to put N users' slider steps on one server without N
browsers on this machine (users' browsers run on their own machines).

The protocol, as Streamlit 1.67's frontend speaks it (read from streamlit/proto and the
server's starlette_websocket.py / app_session.py, and captured from Chromium's frames
with Playwright's page.on("websocket")):

* One websocket, ws://HOST:PORT/_stcore/stream, subprotocol "streamlit" (the header's
  further entries carry an XSRF token and a session id to resume; both optional). A
  client that sends no Origin header is accepted. Every frame is binary: BackMsg
  protobufs up, ForwardMsg protobufs down.
* The browser opens with BackMsg.rerun_script = ClientState{query_string (no "?"),
  page_name ("explore": the URL path; page_script_hash empty until the server names it),
  widget_states (empty), context_info}. The server answers with new_session, then (an
  app with st.navigation) navigation, whose page_script_hash names the page this run
  is on (new_session's may be the main script's: it was on later sessions of this app,
  and a move sent with it reran the fragment without applying the event), then the
  run's deltas (metadata.delta_path = where the element goes), page_info_changed (the
  URL's new query string), and script_finished.
* Every later rerun_script carries the page_script_hash, the current query string and
  widget states. The browser sends every widget's current value each time; the server
  only overwrites the widgets listed (SessionState.set_widgets_from_proto), so sending
  just the one that changed is the same to it.
* A bidirectional component (st.components.v2) arrives as delta.new_element.bidi_component:
  its `id`, `component_name` and its data as JSON (field `json`, or `mixed.json`), plus
  its whole JS source on every run. Its events all go through ONE trigger widget, id
  "$$STREAMLIT_INTERNAL_KEY_" + id + "__events", whose json_trigger_value is a JSON list
  of {"event": name, "value": payload}: the browser sent
  '[{"event":"move","value":{"z":[0.05,0],"seq":1,"v":1,"cid":"1lig0sq2eyi"}}]'.
  A trigger is cleared after the run it caused.
* An element drawn inside an st.fragment carries the fragment's id (delta.fragment_id);
  a rerun_script with ClientState.fragment_id set reruns only that fragment, as the
  browser does for an event of a component inside it. The server's answer is
  new_session, the fragment's deltas, script_finished(FINISHED_FRAGMENT_RUN_SUCCESSFULLY).
* Caching: the browser lists the hashes of big messages it holds in
  ClientState.cached_message_hashes, and the server sends a ForwardMsg.ref_hash instead of
  a message whose hash is listed. Nothing else needs acknowledging: a client that lists
  no hashes (this one) always gets whole messages.
* Closing: any close of the websocket, clean or not, only *disconnects* the session
  (Runtime.disconnect_session): it is kept for server.disconnectedSessionTTL seconds to
  be resumed, and dropped later, when the session store is next written (a later
  disconnect) once that time has passed.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState, ContextInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

TRIGGER_PREFIX, EVENT_DELIM = "$$STREAMLIT_INTERNAL_KEY_", "__"


def stream_url(base_url: str) -> str:
    """http://host:port -> ws://host:port/_stcore/stream"""
    return base_url.replace("http", "ws", 1).rstrip("/") + "/_stcore/stream"


def trigger_widget_id(component_id: str) -> str:
    """The one trigger widget that carries all of a bidi component's events."""
    return f"{TRIGGER_PREFIX}{component_id}{EVENT_DELIM}events"


def event_state(component_id: str, event: str, value) -> WidgetState:
    """The widget state a component's setTriggerValue(event, value) sends."""
    payload = json.dumps([{"event": event, "value": value}], separators=(",", ":"))
    return WidgetState(id=trigger_widget_id(component_id), json_trigger_value=payload)


def component_data(element) -> dict | None:
    """A bidi_component element's data, parsed from its JSON."""
    bc = element.bidi_component
    kind = bc.WhichOneof("data")
    text = bc.json if kind == "json" else bc.mixed.json if kind == "mixed" else ""
    return json.loads(text) if text else None


@dataclass
class Component:
    """The newest copy of one bidi component the server drew."""
    id: str
    fragment_id: str
    data: dict | None
    at: float  # time.perf_counter() when it arrived


@dataclass
class Session:
    """One Streamlit session: the page's state as the server last sent it.

    on_component(session, name, component) is called for each bidi component the
    server sends, as it arrives (round trips are timed there)."""
    base_url: str
    page_name: str = ""
    query: str = ""
    on_component: object = None
    page_script_hash: str = ""
    components: dict[str, Component] = field(default_factory=dict)
    runs_finished: int = 0
    running: bool = False
    last_status: int | None = None
    run_deltas: list[tuple[int, ...]] = field(default_factory=list)  # delta paths of the current run
    _ws: object = None
    _reader: asyncio.Task | None = None
    _tick: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> None:
        """Open the websocket and start reading ForwardMsgs."""
        self._ws = await connect(stream_url(self.base_url), subprotocols=["streamlit"], max_size=None,
                                 compression=None)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        """A clean close (code 1000): the server disconnects the session."""
        await self._ws.close()
        if self._reader:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        async for frame in self._ws:
            msg = ForwardMsg()
            msg.ParseFromString(frame)
            self._on_forward(msg)
            self._tick.set()

    def _on_forward(self, msg: ForwardMsg) -> None:
        """Keep what later messages need: the page's hash, the query, the components."""
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.page_script_hash = msg.new_session.page_script_hash or self.page_script_hash
            self.run_deltas, self.running = [], True
        elif kind == "navigation":  # st.navigation: the page this run is on
            self.page_script_hash = msg.navigation.page_script_hash or self.page_script_hash
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "delta":
            self.run_deltas.append(tuple(msg.metadata.delta_path))
            delta = msg.delta
            if delta.WhichOneof("type") == "new_element" and delta.new_element.WhichOneof("type") == "bidi_component":
                bc = delta.new_element.bidi_component
                comp = Component(bc.id, delta.fragment_id, component_data(delta.new_element), time.perf_counter())
                self.components[bc.component_name] = comp
                if self.on_component:
                    self.on_component(self, bc.component_name, comp)
        elif kind == "script_finished":
            self.runs_finished += 1
            self.running = False
            self.last_status = msg.script_finished
        elif kind == "ref_hash":
            raise RuntimeError("the server sent a cached-message reference, but this client declared no cache")

    def _client_state(self, widgets=(), fragment_id: str = "") -> ClientState:
        return ClientState(query_string=self.query, page_name="" if self.page_script_hash else self.page_name,
                           page_script_hash=self.page_script_hash, fragment_id=fragment_id,
                           widget_states={"widgets": list(widgets)},
                           context_info=ContextInfo(timezone="UTC", timezone_offset=0, locale="en-US",
                                                    url=f"{self.base_url}/{self.page_name}", is_embedded=False,
                                                    color_scheme="light"))

    async def rerun(self, widgets=(), fragment_id: str = "") -> None:
        """Send BackMsg.rerun_script: the whole page, or only fragment_id's fragment."""
        msg = BackMsg(rerun_script=self._client_state(widgets, fragment_id))
        await self._ws.send(msg.SerializeToString())

    async def send_event(self, name: str, event: str, value) -> None:
        """A component event, rerunning only the component's fragment (if it is in one)."""
        comp = self.components[name]
        await self.rerun([event_state(comp.id, event, value)], comp.fragment_id)

    async def wait_until(self, predicate, timeout: float) -> None:
        """Wait until predicate() holds after some message; TimeoutError if it does not."""
        async def loop():
            while not predicate():
                self._tick.clear()
                if self._reader.done():
                    raise ConnectionError(f"the websocket closed: {self._reader.exception()!r}")
                await self._tick.wait()
        await asyncio.wait_for(loop(), timeout)

    async def open(self, timeout: float = 120) -> None:
        """Connect and run the page (as a browser's first load) until it has finished."""
        await self.connect()
        await self.rerun()
        await self.wait_until(lambda: not self.running and self.last_status == ForwardMsg.FINISHED_SUCCESSFULLY
                              and self.components, timeout)

    async def run_fragment(self, name: str, event: str, value, timeout: float = 30) -> None:
        """Send a component event and wait for the run it causes to finish."""
        n = self.runs_finished
        await self.send_event(name, event, value)
        await self.wait_until(lambda: self.runs_finished > n, timeout)
