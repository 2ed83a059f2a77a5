"""The shared polite HTTP client, against a real server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import time

import pytest

from flows.sources import _http
from flows.sources._http import PoliteClient, parse_reset, redact_url
from flows.sources.base import SourceError
from framewatch.config import HttpConfig
from tests.support.http_server import ReplayServer
from tests.support.http_server import Reply


@pytest.fixture
def waits(monkeypatch):
    """Record the client's waits instead of sleeping them."""
    recorded: list[float] = []
    monkeypatch.setattr(_http, "sleep", lambda seconds: recorded.append(seconds))
    return recorded


def client(**overrides) -> PoliteClient:
    config = {"backoff_base_s": 0.01, "max_wait_s": 5.0, "timeout_s": 5.0, "max_retries": 3, **overrides}
    return PoliteClient("probe", HttpConfig(**config))


def test_requests_carry_the_identifying_user_agent():
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply({"ok": 1}))
        http.get(server.url + "/a")
    assert server.requests[0].headers["user-agent"] == HttpConfig().user_agent
    assert "framewatch" in server.requests[0].headers["user-agent"]


def test_429_waits_until_x_ratelimit_reset_given_as_epoch_seconds(waits):
    reset = time.time() + 2.5
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply({"error": "slow down"}, 429, {"X-RateLimit-Reset": f"{reset:.3f}"}), Reply({"ok": 1}))
        response = http.get(server.url + "/a")
    assert response.json() == {"ok": 1}
    assert len(server.requests_to("/a")) == 2
    assert len(waits) == 1 and 1.5 < waits[0] <= 2.5


def test_429_waits_until_reset_given_as_iso_time(waits):
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply({}, 429, {"X-RateLimit-Reset": reset}), Reply({"ok": 1}))
        http.get(server.url + "/a")
    assert len(waits) == 1 and 1.0 < waits[0] <= 3.0


def test_429_honours_retry_after_seconds_and_http_date(waits):
    date = email.utils.formatdate(time.time() + 4, usegmt=True)
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply({}, 429, {"Retry-After": "2"}), Reply({}, 429, {"Retry-After": date}), Reply({"ok": 1}))
        assert http.get(server.url + "/a").json() == {"ok": 1}
    assert waits[0] == 2.0
    assert 2.5 < waits[1] <= 4.0


def test_429_without_any_hint_backs_off_exponentially(waits):
    with ReplayServer() as server, client(backoff_base_s=0.5) as http:
        server.add("/a", Reply({}, 429), Reply({}, 429), Reply({"ok": 1}))
        http.get(server.url + "/a")
    assert len(waits) == 2
    assert 0.5 <= waits[0] < 0.6 and 1.0 <= waits[1] < 1.2


def test_429_asking_for_more_than_max_wait_fails_clearly_without_waiting(waits):
    with ReplayServer() as server, client(max_wait_s=10) as http:
        server.add("/a", Reply({}, 429, {"Retry-After": "3600"}))
        with pytest.raises(SourceError) as caught:
            http.get(server.url + "/a")
    message = str(caught.value)
    assert "'probe'" in message and f"{server.url}/a" in message
    assert "429" in message and "max_wait_s" in message
    assert waits == []


def test_a_real_short_retry_after_is_actually_waited():
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply({}, 429, {"Retry-After": "0.3"}), Reply({"ok": 1}))
        started = time.monotonic()
        http.get(server.url + "/a")
        assert time.monotonic() - started >= 0.3


def test_500_then_success_is_retried_with_backoff(waits):
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply("oops", 500), Reply("busy", 503), Reply({"ok": 1}))
        assert http.get(server.url + "/a").json() == {"ok": 1}
        assert http.requests == 3
    assert len(waits) == 2 and waits[1] > waits[0]


def test_a_timeout_then_success_is_retried():
    with ReplayServer() as server, client(timeout_s=0.2) as http:
        server.add("/slow", Reply({"late": 1}, delay_s=0.6), Reply({"ok": 1}))
        assert http.get(server.url + "/slow").json() == {"ok": 1}
        assert http.requests == 2


def test_persistent_failure_names_source_url_and_attempts(waits):
    with ReplayServer() as server, client(max_retries=2) as http:
        server.add("/down", Reply("no", 502))
        with pytest.raises(SourceError) as caught:
            http.get(server.url + "/down", params={"page": 3})
    message = str(caught.value)
    assert message.startswith("source 'probe'")
    assert f"{server.url}/down?page=3" in message
    assert "HTTP 502" in message and "3 attempts" in message
    assert len(server.requests_to("/down")) == 3


def test_persistent_timeouts_give_a_clear_error():
    with ReplayServer() as server, client(timeout_s=0.1, max_retries=1) as http:
        server.add("/slow", Reply({}, delay_s=0.4))
        with pytest.raises(SourceError, match=r"timed out after 0\.1s \(2 attempts\)"):
            http.get(server.url + "/slow")


def test_a_used_up_quota_delays_the_next_request_until_the_reset(waits):
    reset = time.time() + 3
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply({"n": 1}, 200, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": f"{reset:.2f}"}))
        server.add("/b", Reply({"n": 2}))
        http.get(server.url + "/a")
        assert waits == []
        http.get(server.url + "/b")
    assert len(waits) == 1 and 2.0 < waits[0] <= 3.0


def test_a_quota_resetting_beyond_max_wait_stops_with_a_resumable_error(waits):
    with ReplayServer() as server, client(max_wait_s=30) as http:
        reset = str(int(time.time()) + 900)
        server.add("/a", Reply({}, 200, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}))
        http.get(server.url + "/a")
        with pytest.raises(SourceError, match="rate limit used up.*resumes"):
            http.get(server.url + "/a")
    assert len(server.requests) == 1


def test_malformed_json_is_a_clear_error():
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply('{"data": [1, 2', 200, {"Content-Type": "application/json"}))
        with pytest.raises(SourceError) as caught:
            http.json_of(http.get(server.url + "/a"))
    assert "malformed JSON" in str(caught.value) and f"{server.url}/a" in str(caught.value)


def test_html_where_json_was_expected_is_a_clear_error():
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply("<html><body>Log in</body></html>"))
        with pytest.raises(SourceError, match="expected JSON but got HTML"):
            http.json_of(http.get(server.url + "/a"))


def test_json_or_garbage_where_html_was_expected_is_a_clear_error():
    with ReplayServer() as server, client() as http:
        server.add("/json", Reply({"a": 1}))
        server.add("/bin", Reply(b"\x00\x01binary", 200, {"Content-Type": "application/octet-stream"}))
        with pytest.raises(SourceError, match="expected an HTML page but got JSON"):
            http.html_of(http.get(server.url + "/json"))
        with pytest.raises(SourceError, match="malformed HTML"):
            http.html_of(http.get(server.url + "/bin"))


def test_robots_txt_is_fetched_once_per_host_and_honoured():
    with ReplayServer() as server, client() as http:
        server.add("/robots.txt", Reply("User-agent: *\nDisallow: /private/\n", 200, {"Content-Type": "text/plain"}))
        assert http.robots_allows(server.url + "/blog/post/")
        assert not http.robots_allows(server.url + "/private/page")
        assert http.robots_allows(server.url + "/another/")
    assert len(server.requests_to("/robots.txt")) == 1


def test_missing_robots_txt_allows_everything():
    with ReplayServer() as server, client() as http:
        assert http.robots_allows(server.url + "/anything")
    assert len(server.requests_to("/robots.txt")) == 1


def test_robots_crawl_delay_spaces_requests_to_the_host(waits):
    with ReplayServer() as server, client() as http:
        server.add("/robots.txt", Reply("User-agent: framewatch\nCrawl-delay: 2\nAllow: /\n", 200,
                                        {"Content-Type": "text/plain"}))
        server.add("/p", Reply("<html><body><p>x</p></body></html>"))
        http.robots_allows(server.url + "/p")
        http.get(server.url + "/p")
        http.get(server.url + "/p")
    assert waits and max(waits) > 1.5


def test_configured_delay_spaces_requests_to_the_same_host(waits):
    with ReplayServer() as server, client(delay_s=0.25) as http:
        server.add("/a", Reply({}))
        for _ in range(3):
            http.get(server.url + "/a")
    assert len(waits) == 2 and all(0.15 < w <= 0.25 for w in waits)


def test_secrets_never_show_in_errors_repr_or_logs(caplog, waits):
    caplog.set_level("DEBUG")
    with ReplayServer() as server:
        server.add("/a", Reply("no", 500))
        http = PoliteClient("probe", HttpConfig(backoff_base_s=0.01, max_retries=1),
                            secret_headers={"Authorization": "Bearer sekrit-123"})
        with http, pytest.raises(SourceError) as caught:
            http.get(server.url + "/a", params={"access_token": "sekrit-456", "q": "x"})
        assert "sekrit" not in repr(http)
    assert server.requests[0].headers["authorization"] == "Bearer sekrit-123"
    assert "sekrit" not in str(caught.value) and "access_token=***" in str(caught.value)
    assert "sekrit" not in caplog.text


def test_requests_are_counted_for_batches():
    with ReplayServer() as server, client() as http:
        server.add("/a", Reply({}))
        http.get(server.url + "/a")
        http.get(server.url + "/a")
        assert http.take_requests() == 2
        http.get(server.url + "/a")
        assert http.take_requests() == 1
        assert http.take_requests() == 0


def test_reset_values_are_read_in_every_common_form():
    now = 1_700_000_000.0
    assert parse_reset("1700000030", now) == 30
    assert parse_reset("12", now) == 12  # seconds from now (RateLimit-Reset draft)
    assert parse_reset("2023-11-14T22:13:40Z", now) == 20
    assert parse_reset("Tue, 14 Nov 2023 22:13:40 GMT", now) == 20
    assert parse_reset("soon", now) is None
    assert redact_url("http://h/x?api_key=1&page=2") == "http://h/x?api_key=***&page=2"
