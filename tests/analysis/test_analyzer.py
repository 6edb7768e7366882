"""The analyzer fed with the Records the pipeline produces: flags, causes, broadcasts, rooms."""

from __future__ import annotations

import pytest

from sio_sniffer import model
from sio_sniffer.analysis import AnalysisConfig, RoleRule, Rule, load_profile
from sio_sniffer.analysis.config import KeyPath
from sio_sniffer.model import flags as F
from tests.analysis.analysis_wire import Wire, hook_body, relayed


def mpm() -> AnalysisConfig:
    return AnalysisConfig(profile=load_profile("claude-mpm"))


def test_hook_post_relayed_to_dashboard_closes_expectation() -> None:
    """A POST whose innermost dict reappears in an emitted event is matched: no flag at all."""
    w = Wire(mpm())
    w.client("D1")
    body = hook_body()
    w.post(body)
    w.out_event("D1", "tool_event", [relayed(body)])
    w.wait(5)
    w.analyzer.finish(w.t)
    assert w.flags() == []
    summary = w.records(model.SUMMARY)[0]
    assert summary.get("expectations")["matched"] == 1
    assert summary.get("expectations")["relay_latency"]["count"] == 1


def test_lost_with_no_client_connected() -> None:
    """No client at all when the deadline passes: lost, cause no_receivers."""
    w = Wire()
    w.post(hook_body())
    w.wait(2.5)
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_NO_RECEIVERS
    assert "no client was connected" in flag.get("cause")
    assert flag.get("hint")


def test_lost_when_clients_are_only_on_another_namespace() -> None:
    """Dashboard refused on /hook, server relays on /: connect_error, then lost (namespace)."""
    w = Wire(mpm())
    w.refused("D1", "/hook")
    [refused] = w.flags(F.CONNECT_ERROR)
    assert "/hook" in refused.get("cause") and "Unable to connect" in refused.get("cause")
    w.post(hook_body())
    w.wait(2.5)
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_NAMESPACE
    assert "/hook" in flag.get("cause") and flag.get("expected_nsp") == "/"


def test_lost_when_connected_clients_receive_nothing() -> None:
    """Clients connected on / but the server emits nothing: lost, cause not_delivered."""
    w = Wire(mpm())
    w.client("D1")
    w.wait(0.5)
    w.post(hook_body())
    w.wait(2.5)
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_NOT_DELIVERED
    assert flag.get("receivers") == ["D1"]


def test_lost_names_the_nearest_candidate_and_what_differed() -> None:
    """The server emits a changed payload under another name: lost, emitted_other, with the diff."""
    rules = [Rule(in_path="/api/events", out_name="claude_event", label="r")]
    w = Wire(AnalysisConfig(rules=rules))
    w.client("D1")
    body = hook_body()
    w.post(body)
    changed = relayed(body)
    changed["data"] = {"tool_name": "bash"}
    w.out_event("D1", "mpm_event", [changed])
    w.wait(2.5)
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_EMITTED_OTHER
    nearest = flag.get("nearest")
    assert nearest["name"] == "mpm_event"
    assert "named 'mpm_event', expected 'claude_event'" in nearest["differences"]
    assert any("tool_name 'Bash' became 'bash'" in d for d in nearest["differences"])


def test_client_event_echoed_only_to_sender_is_lost() -> None:
    """A client's event that comes back only to the sender while another client waits: echo_only."""
    w = Wire(mpm())
    w.client("A")
    w.client("B")
    w.wait(0.1)
    w.in_event("A", "claude_event", [{"type": "note", "text": "hello there"}])
    w.out_event("A", "claude_event", [{"type": "note", "text": "hello there"}])
    w.wait(2.5)
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_ECHO_ONLY
    assert flag.get("receivers") == ["B"]


def test_client_event_rebroadcast_to_everyone_is_matched() -> None:
    """The same event reaching the sender first and then another client is delivered: no flag."""
    w = Wire(mpm())
    w.client("A")
    w.client("B")
    w.wait(0.1)
    w.in_event("A", "claude_event", [{"type": "note", "text": "hello there"}])
    w.broadcast(["A", "B"], "claude_event", [{"type": "note", "text": "hello there"}])
    w.wait(2.5)
    assert w.flags(F.LOST) == []


def test_lost_while_the_receiver_reconnects() -> None:
    """The only receiver disconnected around the event: lost, cause receiver_reconnecting."""
    w = Wire(mpm())
    w.client("D1")
    w.wait(0.2)
    w.close("D1")
    w.post(hook_body())
    w.wait(0.5)
    w.client("D2")
    w.wait(2.0)
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_RECONNECTING


def test_lost_blames_the_ingest_error_first() -> None:
    """A POST answered 500 is lost because of the server's error, and also flagged rejected."""
    w = Wire(mpm())
    w.client("D1")
    w.post(hook_body(), status=500)
    [rejected] = w.flags(F.INGEST_REJECTED)
    assert rejected.get("status") == 500
    w.wait(2.5)
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_INGEST_ERROR


def test_lost_unknown_lists_evidence() -> None:
    """Receivers got other, unrelated events: lost, cause unknown, with the evidence."""
    w = Wire()
    w.client("D1")
    w.wait(0.1)
    w.post({"event": "x", "data": {"message": "disk almost full", "level": "warning"}})
    w.out_event("D1", "stats", [{"cpu": 0.5}])
    w.wait(2.5)
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_UNKNOWN
    assert flag.get("evidence")["names"] == ["stats"]


def test_fields_dropped_by_the_relay_are_flagged() -> None:
    """claude-mpm profile: correlation_id in the POST but not in the relayed event: fields_lost."""
    w = Wire(mpm())
    w.client("D1")
    body = hook_body()
    w.post(body)
    w.out_event("D1", "tool_event", [relayed(body, drop=("correlation_id",))])
    w.wait(2.5)
    [flag] = w.flags(F.FIELDS_LOST)
    assert flag.get("fields") == ["correlation_id"]
    assert w.flags(F.LOST) == []


def test_broadcast_record_names_recipients_and_missed() -> None:
    """Three deliveries of one payload are one broadcast; a connected client without it: missed."""
    w = Wire()
    for sid in ("A", "B", "C", "D"):
        w.client(sid)
    w.wait(0.1)
    w.broadcast(["A", "B", "C"], "update", [{"n": 1}])
    w.wait(0.5)
    [b] = w.records(model.BROADCAST)
    assert b.get("recipients") == ["A", "B", "C"] and b.get("missed") == ["D"]
    assert b.name == "update" and b.nsp == "/"


def test_partial_broadcast_with_a_profile_without_rooms() -> None:
    """claude-mpm has no rooms: two of three dashboards receiving is a partial broadcast."""
    w = Wire(mpm())
    for sid in ("A", "B", "C"):
        w.client(sid)
    w.wait(0.1)
    w.broadcast(["A", "B"], "claude_event", [{"n": 1}])
    w.wait(2.5)
    [flag] = w.flags(F.PARTIAL_BROADCAST)
    assert flag.get("missed") == ["C"]
    assert "C (dashboard" in flag.get("cause")


def test_rooms_are_not_partial_broadcasts_without_history() -> None:
    """Without a profile, a consistent subset of clients is a room, not a partial broadcast."""
    w = Wire()
    for sid in ("A", "B", "C"):
        w.client(sid)
    w.wait(0.1)
    for n in range(3):
        w.broadcast(["A", "B"], "update", [{"n": n}])
        w.wait(0.3)
    w.wait(2.5)
    assert w.flags(F.PARTIAL_BROADCAST) == []
    rooms = w.analyzer.rooms()
    assert [m["eio_sid"] for m in rooms[0]["members"]] == ["A", "B"]
    assert rooms[0]["broadcasts"] == 3 and rooms[0]["everyone"] is False


def test_client_dropped_from_its_usual_set_is_a_partial_broadcast() -> None:
    """A client that got this event with the others before and now misses it: partial broadcast."""
    w = Wire()
    for sid in ("A", "B", "C"):
        w.client(sid)
    w.wait(0.1)
    w.broadcast(["A", "B", "C"], "update", [{"n": 1}])
    w.wait(2.5)
    w.broadcast(["A", "B"], "update", [{"n": 2}])
    w.wait(2.5)
    [flag] = w.flags(F.PARTIAL_BROADCAST)
    assert flag.get("missed") == ["C"]


def test_late_polling_delivery_is_not_missed() -> None:
    """A client fetching the broadcast after the window but before the deadline is not flagged."""
    w = Wire(mpm())
    for sid in ("A", "B", "C"):
        w.client(sid)
    w.wait(0.1)
    w.broadcast(["A", "B"], "claude_event", [{"n": 1}])
    w.wait(0.5)
    w.out_event("C", "claude_event", [{"n": 1}])
    w.wait(2.5)
    assert w.flags() == []


def test_duplicate_delivery_to_one_client() -> None:
    """The same event twice to one client within the window is a duplicate."""
    w = Wire()
    w.client("A")
    w.out_event("A", "claude_event", [{"n": 1}])
    w.t += 0.01
    w.out_event("A", "claude_event", [{"n": 1}])
    [flag] = w.flags(F.DUPLICATE)
    assert flag.eio_sid == "A" and flag.name == "claude_event"


def test_same_payload_far_apart_is_not_duplicate() -> None:
    """Identical heartbeats seconds apart are two emissions, not a duplicate."""
    w = Wire()
    w.client("A")
    w.out_event("A", "heartbeat", [{"ok": True}])
    w.wait(1.5)
    w.out_event("A", "heartbeat", [{"ok": True}])
    assert w.flags(F.DUPLICATE) == []


def test_ack_paired_with_latency() -> None:
    """An EVENT with an ack id answered by its ACK: no flag, latency recorded."""
    w = Wire()
    w.client("A")
    w.in_event("A", "get", [{"id": 7}], ack_id=3)
    w.t += 0.04
    w.feed(model.SIO_ACK, eio_sid="A", nsp="/", dir="out", ack_id=3, args=[{"ok": True}])
    w.wait(6)
    w.analyzer.finish(w.t)
    assert w.flags() == []
    acks = w.records(model.SUMMARY)[0].get("acks")
    assert acks["paired"] == 1 and acks["p50_ms"] == pytest.approx(40, abs=1)


def test_ack_missing() -> None:
    """A server EVENT with an ack id never acknowledged by the client: ack_missing (client)."""
    w = Wire()
    w.client("A")
    w.out_event("A", "confirm", [{"id": 7}], ack_id=12)
    w.wait(5.5)
    [flag] = w.flags(F.ACK_MISSING)
    assert flag.get("code") == "client_no_ack" and flag.ack_id == 12


def test_connect_with_auth_unanswered() -> None:
    """CONNECT with an auth payload and no answer: connect_unanswered naming the auth."""
    w = Wire()
    w.client("A", auth="sha256:1a2b3c4d", answer=False)
    w.wait(3.5)
    [flag] = w.flags(F.CONNECT_UNANSWERED)
    assert flag.get("code") == "auth" and "token" in flag.get("cause")


def test_ping_timeout_names_the_silent_client() -> None:
    """The server pings, the client never pongs: ping_timeout, side client."""
    w = Wire()
    w.client("A", ping_interval=1000, ping_timeout=1000)
    w.wait(1.0)
    w.feed(model.EIO_PING, eio_sid="A", dir="out")
    w.wait(1.6)
    [flag] = w.flags(F.PING_TIMEOUT)
    assert flag.get("side") == "client" and flag.get("code") == "client_silent"


def test_ping_timeout_names_the_silent_server() -> None:
    """No ping from the server for longer than interval + timeout: ping_timeout, side server."""
    w = Wire()
    w.client("A", ping_interval=1000, ping_timeout=1000)
    w.wait(1.0)
    w.feed(model.EIO_PING, eio_sid="A", dir="out")
    w.t += 0.01
    w.feed(model.EIO_PONG, eio_sid="A", dir="in")
    w.wait(3.0)
    [flag] = w.flags(F.PING_TIMEOUT)
    assert flag.get("side") == "server"


def test_healthy_heartbeats_raise_nothing() -> None:
    """Regular ping/pong exchanges never flag."""
    w = Wire()
    w.client("A", ping_interval=1000, ping_timeout=1000)
    for _ in range(10):
        w.wait(1.0)
        w.feed(model.EIO_PING, eio_sid="A", dir="out")
        w.t += 0.005
        w.feed(model.EIO_PONG, eio_sid="A", dir="in")
    assert w.flags() == []


def test_unknown_sid_after_restart() -> None:
    """The server answers 400 for a session it had opened: unknown_sid, restarted."""
    w = Wire()
    w.client("A", transport="polling")
    w.wait(1)
    w.feed(model.HTTP, conn="p9", eio_sid="A", transport="polling",
           extra={"method": "GET", "status": 400, "engineio": True, "body": '"Invalid session"'})
    w.wait(2.5)
    [flag] = w.flags(F.UNKNOWN_SID)
    assert flag.get("code") == "restarted" and flag.eio_sid == "A"


def test_unknown_sid_two_servers() -> None:
    """400s mixed with successful traffic for one session: unknown_sid, two servers."""
    w = Wire()
    w.client("A", transport="polling")
    w.wait(0.2)
    w.feed(model.HTTP, conn="p9", eio_sid="A", transport="polling",
           extra={"method": "GET", "status": 400, "engineio": True, "body": '"Invalid session"'})
    w.t += 0.1
    w.feed(model.EIO_PING, eio_sid="A", dir="out")
    w.wait(2.5)
    [flag] = w.flags(F.UNKNOWN_SID)
    assert flag.get("code") == "two_servers"


def test_upgrade_failed_when_websocket_closes_first() -> None:
    """A polling session whose upgrade WebSocket closes before the upgrade and that lives on
    over polling: upgrade_failed, once the deadline shows the session did not end."""
    w = Wire()
    w.client("A", transport="polling")
    w.feed(model.WS_OPEN, conn="w1", eio_sid="A", transport="websocket")
    w.t += 0.05
    w.feed(model.WS_CLOSE, conn="w1", eio_sid="A", dir="out", extra={"code": 1006})
    assert w.flags(F.UPGRADE_FAILED) == []
    w.t += 0.5
    w.feed(model.EIO_PING, eio_sid="A", transport="polling", dir="out")
    w.wait(2.5)
    [flag] = w.flags(F.UPGRADE_FAILED)
    assert "1006" in flag.get("cause")


def test_upgrade_completing_is_not_flagged() -> None:
    """A probe followed by the upgrade packet raises nothing."""
    w = Wire()
    w.client("A", transport="polling")
    w.feed(model.WS_OPEN, conn="w1", eio_sid="A", transport="websocket")
    w.feed(model.EIO_UPGRADE, conn="w1", eio_sid="A", transport="websocket", dir="in")
    w.wait(3)
    assert w.flags() == []


def test_slow_ingest() -> None:
    """A POST answered after 500 ms (limit 300 ms): slow_ingest."""
    w = Wire()
    w.client("D1")
    body = hook_body()
    w.post(body, duration_ms=500)
    w.out_event("D1", "claude_event", [relayed(body)])
    [flag] = w.flags(F.SLOW_INGEST)
    assert flag.get("duration_ms") == 500 and flag.get("limit_ms") == 300


def test_payload_too_large_for_ingest_and_socketio() -> None:
    """A hook body above the profile's limit, an event above maxPayload: payload_too_large twice."""
    w = Wire(mpm())
    w.client("D1", max_payload=1000)
    w.post(hook_body(), body_size=2_000_000, status=500)
    w.in_event("D1", "upload", [{"blob": "x" * 2000}])
    codes = sorted(f.get("code") for f in w.flags(F.PAYLOAD_TOO_LARGE))
    assert codes == ["ingest_body", "max_payload"]


def test_unlistened_event_for_the_dashboard() -> None:
    """claude-mpm profile: the server sends mpm_event, which the dashboard does not listen to."""
    w = Wire(mpm())
    w.client("D1", user_agent="Mozilla/5.0 Chrome/120")
    w.out_event("D1", "dashboard:welcome", [{"hello": 1}])
    w.out_event("D1", "claude_event", [{"a": 1}])
    w.out_event("D1", "mpm_event", [{"a": 2}])
    w.out_event("D1", "mpm_event", [{"a": 3}])
    [flag] = w.flags(F.UNLISTENED_EVENT)
    assert flag.name == "mpm_event" and "claude_event" in flag.get("listens")


def test_decode_error_is_flagged() -> None:
    """A decode_error record becomes a decode_error flag carrying the reason."""
    w = Wire()
    w.feed(model.DECODE_ERROR, conn="c1", dir="in",
           extra={"reason": "ack id is not a number", "offset": 3, "layer": "socketio"})
    [flag] = w.flags(F.DECODE_ERROR)
    assert flag.get("reason") == "ack id is not a number"


def test_rule_with_key_paths_closes_expectation() -> None:
    """A user rule: an out event whose key path equals the POST's closes it, whatever the shape."""
    rule = Rule(in_path="/api/events", out_nsp="/", out_name="note",
                match=((KeyPath.parse("data.id"), KeyPath.parse("ref")),), label="r")
    w = Wire(AnalysisConfig(rules=[rule]))
    w.client("D1")
    w.post({"data": {"id": 4242, "text": "a"}})
    w.post({"data": {"id": 4343, "text": "b"}})
    w.out_event("D1", "note", [{"ref": 4343}])
    w.wait(2.5)
    # The note that came out closed the other POST: it is that event, not a changed copy of
    # this one, so this one was not emitted.
    [flag] = w.flags(F.LOST)
    assert flag.get("code") == F.LOST_NOT_EMITTED
    assert flag.get("not_emitted")["siblings_emitted"] == 1
    assert w.analyzer.expectations_matched == 1


def test_client_events_that_are_never_relayed_are_summarised_not_flagged() -> None:
    """A client event the server only consumes (join) raises no lost flag, only a summary count."""
    w = Wire()
    w.client("A")
    w.client("B")
    w.in_event("A", "join_room", [{"room": "project-a"}])
    w.wait(2.5)
    w.analyzer.finish(w.t)
    assert w.flags() == []
    summary = w.records(model.SUMMARY)[0]
    assert summary.get("expectations")["client_events_never_relayed"] == {"/ join_room": 1}


def test_roles_inferred_and_set_by_rules() -> None:
    """Only sending = hook, only receiving = dashboard, both = client; a role rule overrides."""
    w = Wire(AnalysisConfig(roles=[RoleRule(role="hook", user_agent="probe/*")]))
    w.client("S")
    w.client("R")
    w.client("C")
    w.client("P", user_agent="probe/1.0")
    w.in_event("S", "emit", [1])
    w.out_event("R", "news", [1])
    w.in_event("C", "emit", [2])
    w.out_event("C", "news", [2])
    w.out_event("P", "news", [3])
    roles = {sid: w.analyzer.sessions.get(sid).role() for sid in "SRCP"}  # type: ignore[union-attr]
    assert roles == {"S": "hook", "R": "dashboard", "C": "client", "P": "hook"}


def test_finish_emits_rooms_and_summary_once() -> None:
    """finish() announces open groups, then emits one rooms and one summary record."""
    w = Wire()
    w.client("A")
    w.client("B")
    w.broadcast(["A", "B"], "update", [{"n": 1}])
    w.analyzer.finish(w.t)
    w.analyzer.finish(w.t + 1)
    assert len(w.records(model.BROADCAST)) == 1
    [rooms] = w.records(model.ROOMS)
    assert rooms.get("rooms")[0]["everyone"] is True
    assert len(w.records(model.SUMMARY)) == 1


def test_records_drive_deadlines_without_ticks() -> None:
    """Deadlines fire from record timestamps alone, so replaying a capture needs no clock."""
    w = Wire()
    w.post(hook_body())
    w.t += 3
    w.feed(model.CONN_OPEN, conn="x", extra={"peer": "127.0.0.1:1"})
    assert len(w.flags(F.LOST)) == 1


def test_value_changing_back_is_not_a_duplicate() -> None:
    """A counter going 1, 2, 1 within the window is three deliveries, not a duplicate."""
    w = Wire()
    w.client("A")
    for count in (1, 2, 1):
        w.out_event("A", "dashboard:client:count", [{"count": count}])
        w.t += 0.05
    assert w.flags(F.DUPLICATE) == []


def test_server_silence_judged_when_the_client_gives_up() -> None:
    """The client closes at interval + timeout without a ping: ping_timeout, side server."""
    w = Wire()
    w.client("A", ping_interval=1000, ping_timeout=200)
    w.t += 1.2
    w.close("A")
    [flag] = w.flags(F.PING_TIMEOUT)
    assert flag.get("side") == "server"


def test_broadcast_is_announced_by_later_records_with_no_timer_pending() -> None:
    """A broadcast's announcement falls due from the records that follow it, also when no
    other deadline is pending (the analyzer skips deadline checks until something is due)."""
    w = Wire()
    w.client("A", ping_interval=0, ping_timeout=0)
    w.client("B", ping_interval=0, ping_timeout=0)
    w.t += 10
    w.analyzer.tick(w.t)  # the connect timers are done: nothing is pending any more
    w.broadcast(["A", "B"], "update", [{"n": 1}])
    w.t += 5
    w.feed(model.CONN_OPEN, conn="x", extra={"peer": "127.0.0.1:1"})
    [broadcast] = w.records(model.BROADCAST)
    assert sorted(broadcast.get("recipients")) == ["A", "B"]


def test_number_reserialised_as_an_integer_still_matches() -> None:
    """A hook's 1.0 that a JavaScript server relays as 1 is the same value: matched, not lost."""
    w = Wire()
    w.client("D1")
    w.post({"event": "progress", "data": {"ratio": 1.0}})
    w.out_event("D1", "progress", [{"ratio": 1}])
    w.wait(3)
    assert w.flags(F.LOST) == []
    w.analyzer.finish(w.t)
    assert w.records(model.SUMMARY)[0].get("expectations")["matched"] == 1


@pytest.mark.parametrize("listener_first", [True, False])
def test_echo_only_counts_the_listeners_connected_when_the_event_came_in(
        listener_first: bool) -> None:
    """Generic mode: an event echoed to its sender alone is echo_only while a listener was
    connected; a listener that connects after it (a new client, a reconnect's new session)
    could not have got it: no flag."""
    w = Wire()
    w.client("A")
    if listener_first:
        w.client("L")
    w.wait(0.1)
    w.in_event("A", "note", [{"text": "hello there"}])
    w.out_event("A", "note", [{"text": "hello there"}])
    w.wait(0.3)
    if not listener_first:
        w.client("L")
    w.wait(2.0)
    assert [f.get("code") for f in w.flags()] == ([F.LOST_ECHO_ONLY] if listener_first else [])


@pytest.mark.parametrize("other_stays", [True, False])
def test_relayed_kind_echoed_to_a_sender_alone_at_the_time_is_delivered(
        other_stays: bool) -> None:
    """A kind the server relays, echoed to its sender only: echo_only while another client was
    connected; when the sender was alone and a client connects only afterwards, the echo
    reached everyone there was: no flag."""
    w = Wire()
    w.client("A")
    w.client("B")
    w.wait(0.1)
    w.in_event("A", "note", [{"text": "first note"}])
    w.broadcast(["A", "B"], "note", [{"text": "first note"}])
    w.wait(0.1)
    if not other_stays:
        w.close("B")
    w.in_event("A", "note", [{"text": "second note"}])
    w.out_event("A", "note", [{"text": "second note"}])
    w.wait(0.3)
    w.client("C")
    w.wait(2.0)
    assert [f.get("code") for f in w.flags()] == ([F.LOST_ECHO_ONLY] if other_stays else [])


def test_routing_arguments_are_not_expected_out_again() -> None:
    """``emit("say", room, {...})`` relayed as ``io.to(room).emit("message", {...})``: the
    dict argument came out, the room did not (it is routing): matched. The next ``say`` that
    the server does not emit at all is still lost."""
    w = Wire()
    w.client("A")
    w.client("B")
    w.wait(0.1)
    w.in_event("A", "say", ["lobby", {"text": "hello there"}])
    # B first: the judge compares a lost event with what others got, not with the echo.
    w.broadcast(["B", "A"], "message", [{"text": "hello there"}])
    w.wait(2.0)
    assert w.flags() == []
    w.in_event("A", "say", ["lobby", {"text": "anyone here"}])
    w.wait(2.0)
    [flag] = w.flags()
    assert flag.get("flag") == F.LOST and flag.get("code") == F.LOST_NOT_EMITTED


@pytest.mark.parametrize("tolerance", [0.0, 0.005])
def test_a_delivery_stamped_just_before_its_ingest_answers_it_within_the_tolerance(
        tolerance: float) -> None:
    """Two captures' clocks are only so close: with a causality tolerance (report of several
    captures) a delivery stamped 3 ms before its ingest still answers it; without, it cannot."""
    w = Wire(AnalysisConfig(causality_tolerance=tolerance))
    w.client("D1")
    body = hook_body()
    w.out_event("D1", "tool_event", [relayed(body)])
    w.t += 0.003
    w.post(body)
    w.wait(2.5)
    assert len(w.flags(F.LOST)) == (0 if tolerance else 1)
    assert w.analyzer.relay.matched == (1 if tolerance else 0)
