"""``mmkgrec serve``: the API answers what the Run answers, every bad input is a 4xx JSON error
naming what was wrong (never a 500 or a traceback) after which the server keeps serving, posters
never leave their folder, feedback is on disk before its 201 (also across a kill -9), and a
reload reaches every worker."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install "
                    "'mmkgrec[serve]')")
from fastapi.testclient import TestClient  # noqa: E402

from helpers import ServedInThread, free_port, poster  # noqa: E402
from mmkgrec import api  # noqa: E402
from mmkgrec.cli import main  # noqa: E402
from mmkgrec.runs import RunFileError  # noqa: E402
from mmkgrec.serving.app import create_app  # noqa: E402
from mmkgrec.serving.feedback import read_events  # noqa: E402

QUIET = {"show_progress": False, "threads": 1}
KEY = "correct horse battery staple"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    api.train("BPR", "synthetic", d / "bpr", overrides={**QUIET, "epochs": 3})
    api.train("Pop", "synthetic", d / "pop", overrides=QUIET)
    posters = d / "posters"
    posters.mkdir()
    for i in range(10):
        poster(i).save(posters / f"{i}.jpg")
    (d / "secret.png").write_bytes(b"\x89PNG not for the web")
    os.symlink(d / "secret.png", posters / "11.png")  # a poster whose real path leaves the folder
    return d


@pytest.fixture(scope="module")
def client(runs_dir):
    app = create_app(runs_dir / "bpr", feedback=runs_dir / "feedback" / "events.jsonl",
                     images=runs_dir / "posters")
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def run(runs_dir):
    return api.load(runs_dir / "bpr")


def _still_serving(client, run):
    r = client.get("/v1/recommend", params={"user": str(run.dataset.user_ids[0]), "k": 5})
    assert r.status_code == 200 and len(r.json()["items"]) == 5


def _error(r, status, *words):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) >= {"error"} and "Traceback" not in r.text
    for w in words:
        assert w in body["error"], (w, body["error"])
    return body


def test_recommend_batch_and_similar_equal_the_run(client, run):
    users = [str(u) for u in run.dataset.user_ids[:5]]
    for u in users:
        got = client.get("/v1/recommend", params={"user": u, "k": 7}).json()
        assert [(e["item"], pytest.approx(e["score"], rel=1e-6)) for e in got["items"]] == \
            [(i, pytest.approx(s, rel=1e-6)) for i, s in run.recommend(u, 7)]
        assert got["run_id"] == run.data.run_id and all(e["title"] for e in got["items"])
    got = client.get("/v1/recommend", params={"user": users[0], "k": 7, "exclude_seen": "false"})
    assert [e["item"] for e in got.json()["items"]] == \
        [i for i, _ in run.recommend(users[0], 7, exclude_seen=False)]
    batch = client.post("/v1/recommend/batch", json={"users": users, "k": 4}).json()
    assert [r["user"] for r in batch["results"]] == users
    assert [[e["item"] for e in r["items"]] for r in batch["results"]] == \
        [[i for i, _ in recs] for recs in run.recommend_batch(users, 4)]
    item = str(run.dataset.item_ids[3])
    sim = client.get("/v1/similar", params={"item": item, "k": 5}).json()
    assert [e["item"] for e in sim["items"]] == [i for i, _ in run.similar_items(item, 5)]


def test_explain_is_the_runs_verified_explanation(client, run):
    user = str(run.dataset.user_ids[2])
    for item, _ in run.recommend(user, 3):
        r = client.get("/v1/explain", params={"user": user, "item": item})
        assert r.status_code == 200, r.text
        got, want = r.json(), run.explain(user, item, backend="template").to_dict()
        assert got["text"] == want["text"] and got["backend"] == "template"
        assert got["sentences"] == json.loads(json.dumps(want["sentences"]))
        assert got["text"] and all(s["triples"] for s in got["sentences"])
    # backends that load a language model or call out are off unless the server enables them
    _error(client.get("/v1/explain", params={"user": user, "item": "3", "backend": "http"}),
           422, "'http' is not enabled")
    _error(client.get("/v1/explain", params={"user": user, "item": "3", "backend": "bogus"}),
           422, "'bogus' is not enabled")


def test_items_history_users_and_posters(client, run):
    meta = client.get("/v1/item", params={"item": "3"}).json()
    assert meta["id"] == "3" and meta["has_poster"] and "class" in meta["attributes"]
    r = client.get("/v1/poster", params={"item": "3"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-poster"] == "file" and r.content[:2] == b"\xff\xd8"
    r = client.get("/v1/poster", params={"item": "150"})  # no poster: the placeholder
    assert r.status_code == 200 and r.headers["x-poster"] == "placeholder"
    assert r.headers["content-type"].startswith("image/svg+xml")
    # a listed poster whose real path leaves the folder is never served
    r = client.get("/v1/poster", params={"item": "11"})
    assert r.headers["x-poster"] == "placeholder" and b"not for the web" not in r.content
    user = str(run.dataset.user_ids[0])
    h = client.get("/v1/history", params={"user": user, "limit": 500}).json()
    u = run.user_index(user)
    n = sum(int((run.split.part(p).user == u).sum()) for p in ("train", "valid", "test"))
    assert h["total"] == n == len(h["items"])
    ts = [row["timestamp"] for row in h["items"]]
    assert ts == sorted(ts, reverse=True)  # latest first
    assert {row["part"] for row in h["items"]} <= {"train", "valid", "test"}
    assert len(client.get("/v1/history", params={"user": user, "limit": 2}).json()["items"]) == 2
    found = client.get("/v1/users", params={"prefix": "1", "limit": 5}).json()["users"]
    assert found and all(x.startswith("1") for x in found) and found == sorted(found)


@pytest.mark.parametrize("path,params,kind,raw", [
    ("/v1/recommend", {"user": "no-such-user"}, "user", "no-such-user"),
    ("/v1/similar", {"item": "no-such-item"}, "item", "no-such-item"),
    ("/v1/item", {"item": "999999"}, "item", "999999"),
    ("/v1/poster", {"item": "../../../etc/passwd"}, "item", "../../../etc/passwd"),
    ("/v1/poster", {"item": "/etc/passwd"}, "item", "/etc/passwd"),
    ("/v1/history", {"user": "%00"}, "user", "%00"),
    ("/v1/explain", {"user": "nobody", "item": "3"}, "user", "nobody"),
])
def test_unknown_ids_are_404_naming_the_id(client, run, path, params, kind, raw):
    body = _error(client.get(path, params=params), 404, f"unknown {kind} id '{raw}'")
    assert body["id"] == raw and body["kind"] == kind
    _still_serving(client, run)


def test_bad_parameters_are_422_naming_them(client, run):
    user = str(run.dataset.user_ids[0])
    for k in (-1, 0, 1001, 10**12):
        _error(client.get("/v1/recommend", params={"user": user, "k": k}), 422, "k")
    _error(client.get("/v1/recommend", params={"user": user, "k": "ten"}), 422, "k",
           "valid integer")
    _error(client.get("/v1/recommend", params={"user": user, "exclude_seen": "maybe"}), 422,
           "exclude_seen")
    _error(client.get("/v1/recommend"), 422, "user", "required")
    _error(client.get("/v1/similar", params={"item": "3", "k": -5}), 422, "k")
    _error(client.get("/v1/history", params={"user": user, "limit": 0}), 422, "limit")
    _error(client.get("/v1/explain", params={"user": user, "item": "3",
                                             "backend": "../x"}), 422, "backend")
    # wrong types in JSON bodies (no silent coercion of numbers to ids)
    _error(client.post("/v1/recommend/batch", json={"users": [user, 5]}), 422, "users.1",
           "valid string")
    _error(client.post("/v1/recommend/batch", json={"users": user}), 422, "users")
    _error(client.post("/v1/recommend/batch", json={"users": [user], "k": "3"}), 422, "k")
    _error(client.post("/v1/recommend/batch", json={"users": [user], "k": 10**6}), 422, "k")
    _error(client.post("/v1/recommend/batch", json={"users": []}), 422, "users")
    _error(client.post("/v1/recommend/batch", json={"users": [user], "extra": 1}), 422, "extra")
    _error(client.post("/v1/recommend/batch", json={"users": [user, "ghost"]}), 404,
           "unknown user id 'ghost'")
    _error(client.post("/v1/feedback", json={"user": user, "item": "3", "event": "Click!"}),
           422, "event")
    _error(client.post("/v1/feedback", json={"user": user, "item": "3", "event": "rating",
                                              "value": "five"}), 422, "value")
    _error(client.get("/v1/nothing-here"), 404, "no such endpoint")
    _error(client.delete("/v1/recommend"), 405, "not allowed")
    _still_serving(client, run)


def test_malformed_json_and_oversized_bodies(client, run):
    headers = {"content-type": "application/json"}
    _error(client.post("/v1/recommend/batch", content=b'{"users": ["1", ', headers=headers), 400,
           "malformed JSON")
    _error(client.post("/v1/feedback", content=b"\xff\xfe not json", headers=headers), 400,
           "malformed JSON")
    big = json.dumps({"users": ["1"] * 40000}).encode()
    _error(client.post("/v1/recommend/batch", content=big, headers=headers), 413, "limit")

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b" " * 1024

    _error(client.post("/v1/recommend/batch", content=chunks(), headers=headers), 413, "limit")
    _still_serving(client, run)


def test_feedback_is_on_disk_before_the_reply(client, runs_dir, run):
    path = runs_dir / "feedback" / "events.jsonl"
    before = len(read_events(path)) if path.exists() else 0
    user = str(run.dataset.user_ids[1])
    ids = []
    for k in range(5):
        r = client.post("/v1/feedback", json={"user": user, "item": str(k), "event": "rating",
                                              "value": k, "timestamp": 1700000000 + k})
        assert r.status_code == 201, r.text
        ids.append(r.json()["event_id"])
        events = read_events(path)  # read after each reply: already there
        assert events[-1]["event_id"] == ids[-1] and events[-1]["value"] == k
    events = read_events(path)[before:]
    assert [e["event_id"] for e in events] == ids
    assert {e["run_id"] for e in events} == {run.data.run_id}
    _error(client.post("/v1/feedback", json={"user": user, "item": "nope", "event": "click"}),
           404, "unknown item id 'nope'")
    assert len(read_events(path)) == before + 5  # a refused event is not written


def test_feedback_off_and_inside_the_run_directory(runs_dir):
    with TestClient(create_app(runs_dir / "bpr")) as c:
        _error(c.post("/v1/feedback", json={"user": "1", "item": "1", "event": "click"}), 409,
               "--feedback")
    with pytest.raises(Exception, match="inside the run directory"):
        create_app(runs_dir / "bpr", feedback=runs_dir / "bpr" / "events.jsonl")


def test_admin_key_and_reload(runs_dir, run, monkeypatch):
    monkeypatch.delenv("MMKGREC_API_KEY", raising=False)
    with TestClient(create_app(runs_dir / "bpr")) as c:
        _error(c.post("/v1/admin/reload"), 403, "MMKGREC_API_KEY")
    monkeypatch.setenv("MMKGREC_API_KEY", KEY)
    with TestClient(create_app(runs_dir / "bpr")) as c:
        _error(c.post("/v1/admin/reload"), 401, "missing API key")
        _error(c.post("/v1/admin/reload", headers={"X-API-Key": KEY[:-1]}), 401, "wrong API key")
        _error(c.post("/v1/admin/reload", headers={"Authorization": "Bearer nope"}), 401,
               "wrong API key")
        _error(c.post("/v1/admin/reload", headers={"X-API-Key": "é".encode("latin-1")}), 401, "wrong API key")
        assert c.get("/health").json()["model"] == "BPR"
        r = c.post("/v1/admin/reload", json={"run_dir": str(runs_dir / "pop")},
                   headers={"X-API-Key": KEY})
        assert r.status_code == 200 and r.json()["model"] == "Pop", r.text
        h = c.get("/health").json()
        assert (h["model"], h["generation"]) == ("Pop", 1)
        _error(c.get("/v1/similar", params={"item": "3"}), 409, "no item vectors")
        # an incomplete run directory is refused; the server keeps the run it had
        broken = runs_dir / "broken"
        import shutil

        shutil.copytree(runs_dir / "bpr", broken)
        (broken / "exclude.safetensors").unlink()
        _error(c.post("/v1/admin/reload", json={"run_dir": str(broken)},
                      headers={"Authorization": f"Bearer {KEY}"}), 422, "exclude.safetensors")
        _error(c.post("/v1/admin/reload", json={"run_dir": str(runs_dir / "nowhere")},
                      headers={"X-API-Key": KEY}), 422, "not a run directory")
        assert c.get("/health").json()["model"] == "Pop"
    # protect_all: every /v1 endpoint wants the key
    with TestClient(create_app(runs_dir / "bpr", protect_all=True)) as c:
        user = str(run.dataset.user_ids[0])
        _error(c.get("/v1/recommend", params={"user": user}), 401, "missing API key")
        assert c.get("/v1/recommend", params={"user": user},
                     headers={"X-API-Key": KEY}).status_code == 200
        assert c.get("/health").status_code == 200


def test_reload_reaches_every_worker(runs_dir, tmp_path, monkeypatch):
    """Two apps sharing a control file stand for two worker processes."""
    monkeypatch.setenv("MMKGREC_API_KEY", KEY)
    control = tmp_path / "control.json"
    a = TestClient(create_app(runs_dir / "bpr", control=control))
    b = TestClient(create_app(runs_dir / "bpr", control=control))
    assert a.post("/v1/admin/reload", json={"run_dir": str(runs_dir / "pop")},
                  headers={"X-API-Key": KEY}).status_code == 200
    assert a.get("/health").json()["model"] == "Pop"
    # b answers from its old run while it loads the new one, and never fails meanwhile
    deadline = time.time() + 60
    while time.time() < deadline:
        h = b.get("/health").json()
        assert h["status"] == "ok"
        if h["model"] == "Pop":
            break
        time.sleep(0.05)
    assert (h["model"], h["generation"]) == ("Pop", 1)


def test_reload_drops_no_request(runs_dir, monkeypatch):
    """Requests keep being answered, all 200, while the served run is swapped back and forth."""
    import httpx

    monkeypatch.setenv("MMKGREC_API_KEY", KEY)
    statuses, stop = [], threading.Event()
    with ServedInThread(create_app(runs_dir / "bpr")) as base:
        def hammer():
            with httpx.Client(base_url=base, timeout=30) as c:
                for _ in range(5000):  # bounded
                    if stop.is_set():
                        return
                    statuses.append(c.get("/v1/recommend", params={"user": "1", "k": 5})
                                    .status_code)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=base, timeout=60, headers={"X-API-Key": KEY}) as admin:
            for target in ("pop", "bpr", "pop"):
                n = len(statuses)
                r = admin.post("/v1/admin/reload", json={"run_dir": str(runs_dir / target)})
                assert r.status_code == 200, r.text
                deadline = time.time() + 30
                while len(statuses) < n + 20 and time.time() < deadline:
                    time.sleep(0.01)
            stop.set()
            for t in threads:
                t.join(60)
            h = admin.get("/health").json()
    assert (h["model"], h["generation"]) == ("Pop", 3)
    assert len(statuses) > 60 and set(statuses) == {200}


def test_incomplete_run_directory_is_named(runs_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "run"
    shutil.copytree(runs_dir / "bpr", broken)
    (broken / "ids.safetensors").write_bytes(b"truncated")
    with pytest.raises(RunFileError, match="ids.safetensors"):
        create_app(broken)
    port = free_port()
    assert main(["serve", str(broken), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "ids.safetensors" in err and "Traceback" not in err
    assert main(["serve", str(runs_dir / "bpr"), "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["serve", str(runs_dir / "bpr"), "--port", str(port), "--images",
                 str(tmp_path / "none")]) == 2
    assert "--images" in capsys.readouterr().err


def test_cors_off_unless_configured(runs_dir):
    origin = {"Origin": "http://example.test"}
    with TestClient(create_app(runs_dir / "bpr")) as c:
        r = c.get("/health", headers=origin)
        assert "access-control-allow-origin" not in r.headers
        page = c.get("/")
        assert page.status_code == 200 and "default-src 'self'" in \
            page.headers["content-security-policy"]
    with TestClient(create_app(runs_dir / "bpr", cors_origins=["http://example.test"])) as c:
        r = c.get("/health", headers=origin)
        assert r.headers["access-control-allow-origin"] == "http://example.test"


def test_metrics_and_openapi(client, run):
    client.get("/v1/recommend", params={"user": str(run.dataset.user_ids[0])})
    text = client.get("/metrics").text
    assert 'mmkgrec_requests_total{method="GET",route="/v1/recommend",status="200"}' in text
    assert "mmkgrec_request_duration_seconds_bucket" in text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/recommend", "/v1/recommend/batch", "/v1/similar", "/v1/explain", "/v1/item",
            "/v1/poster", "/v1/history", "/v1/feedback", "/v1/admin/reload"} <= set(paths)


# ---- a real server process: kill -9 while feedback streams in -----------------------------------
def test_acknowledged_feedback_survives_kill_9(runs_dir, tmp_path, run):
    import httpx

    port = free_port()
    path = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "mmkgrec.cli", "serve", str(runs_dir / "bpr"),
                             "--port", str(port), "--feedback", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    acked, stop = [], threading.Event()
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            user = str(run.dataset.user_ids[0])

            def stream():
                with httpx.Client(base_url=base, timeout=10) as s:
                    for k in range(1000):
                        if stop.is_set():
                            return
                        try:
                            r = s.post("/v1/feedback", json={"user": user, "item": str(k % 50),
                                                             "event": "view", "value": k})
                        except httpx.TransportError:
                            return
                        if r.status_code == 201:
                            acked.append(r.json()["event_id"])

            threads = [threading.Thread(target=stream) for _ in range(4)]
            for t in threads:
                t.start()
            while len(acked) < 40 and any(t.is_alive() for t in threads):
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    assert len(acked) >= 40
    on_disk = {e["event_id"] for e in read_events(path)}
    assert set(acked) <= on_disk
