"""The service on a real uvicorn server on 127.0.0.1 (a free port): the serve and deploy commands, chunked bodies
over the wire, a port in use, a tampered package at start, and a bounded load test."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn

from flightdelay.cli import main
from flightdelay.core.config import ServeParams
from flightdelay.release.package_format import PackageError
from flightdelay.serving.app import Settings, create_app
from flightdelay.serving.predictor import Predictor
from flightdelay.serving.runtime import Deployed, Slot, read_history, resolve_package
from flightdelay.serving.serve import ServeError, bind
from tests.default_params import default_params, write_params
from tests.fake_predictor import FLIGHT, FakePredictor, fake_loader
from tests.integration.test_service import TOKEN, make_package, tamper


class Running:
    def __init__(self, tmp: Path, params: ServeParams) -> None:
        self.tmp = tmp
        self.predictors: dict[str, FakePredictor] = {}
        self.first = self.add(FakePredictor(), b"first")
        self.settings = Settings(params, tmp / "requests.jsonl", tmp / "history.jsonl", tmp / "alerts", TOKEN)
        loader = fake_loader(self.predictors)
        slot = Slot(current=Deployed(loader(self.first), self.first, None, "t0"))
        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(self.settings, slot, loader), log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def add(self, predictor: FakePredictor, tag: bytes) -> Path:
        path = make_package(self.tmp / "pk" / tag.decode(), tag)
        self.predictors[path.name] = predictor
        return path

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started or httpx2.get(f"{self.url}/ready").status_code != 200:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.chdir(tmp_path)  # the commands' own logs go to logs/ here
    monkeypatch.setenv("FLIGHTDELAY_RELOAD_TOKEN", TOKEN)
    with Running(tmp_path, ServeParams(max_body_bytes=4096)) as server:
        yield server


def deploy(running: Running, *args: str) -> int:
    return main(["deploy", *args, "--url", running.url, "--deploy-history", str(running.settings.history)])


def test_the_deploy_command_deploys_refuses_rolls_back_and_prints_the_history(running, capsys):
    second = running.add(FakePredictor(offset=0.1, manifest={"version": "v0.0.2"}), b"second")
    assert deploy(running, "--package", str(second)) == 0
    assert f"deployed: {second.name} (version v0.0.2" in capsys.readouterr().out
    served = httpx2.post(f"{running.url}/predict", json={"flights": [FLIGHT]}).json()
    assert served["model"]["name"] == second.name

    bad = tamper(running.add(FakePredictor(), b"bad"))
    assert deploy(running, "--package", str(bad)) == 1
    err = capsys.readouterr().err
    assert "deploy_refused" in err and "SHA-256" in err and f"still serving {second.name}" in err
    assert httpx2.post(f"{running.url}/predict", json={"flights": [FLIGHT]}).json()["model"]["name"] == second.name
    assert list(running.settings.alerts_dir.glob("deploy-*.json"))

    assert deploy(running, "--rollback") == 0
    assert f"rolled_back: {running.first.name}" in capsys.readouterr().out
    assert deploy(running, "--history") == 0
    table = capsys.readouterr().out
    assert [line.split()[1] for line in table.splitlines()[1:]] == ["started", "deployed", "refused", "rolled_back"]
    assert [e["outcome"] for e in read_history(running.settings.history)][-1] == "rolled_back"


def test_the_deploy_command_needs_the_token_and_a_reachable_service(running, capsys, monkeypatch):
    monkeypatch.setenv("FLIGHTDELAY_RELOAD_TOKEN", "wrong")
    assert deploy(running, "--package", str(running.first)) == 1
    assert "unauthorized" in capsys.readouterr().err
    monkeypatch.delenv("FLIGHTDELAY_RELOAD_TOKEN")
    assert deploy(running, "--package", str(running.first)) == 1
    assert "set FLIGHTDELAY_RELOAD_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("FLIGHTDELAY_RELOAD_TOKEN", TOKEN)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert main(["deploy", "--rollback", "--url", f"http://127.0.0.1:{port}"]) == 1
    assert "cannot reach the service" in capsys.readouterr().err


def test_a_chunked_body_over_the_limit_is_413_on_the_wire(running):
    host, port = running.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"flights": [FLIGHT] * 40}).encode()
    connection.request("POST", "/predict", body=iter([body[i : i + 500] for i in range(0, len(body), 500)]),
                       headers={"Content-Type": "application/json"}, encode_chunked=True)  # fmt: skip
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 413 and answer["error"]["code"] == "body_too_large" and answer["error"]["limit"] == 4096


def test_a_port_in_use_is_one_line_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=rf"^port {port} on 127.0.0.1 is in use; pick another with --port N"):
            bind("127.0.0.1", port)


def test_the_listening_socket_is_tcp_with_nodelay_so_responses_are_not_held_by_nagle():
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY on its connections only then
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(sock.getsockname()[:2]):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_serve_refuses_a_tampered_package_before_listening(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", default_params())
    package = tamper(make_package(tmp_path / "pk", b"x"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["serve", "--package", str(package), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert "serve failed:" in err and "the package was changed or damaged, refusing to load it" in err
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_serve_and_deploy_refuse_a_symlinked_package_as_score_and_reload_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", default_params())
    real = make_package(tmp_path / "pk", b"x")
    link = tmp_path / "links" / real.name
    link.parent.mkdir()
    link.symlink_to(real, target_is_directory=True)
    refusal = f"{link}: a symbolic link; a package must be a real directory, refusing it"
    assert main(["serve", "--package", str(link)]) == 1
    assert f"serve failed: {refusal}" in capsys.readouterr().err
    assert resolve_package(str(link), None) == link  # what `deploy` sends to /admin/reload, which refuses it
    with pytest.raises(PackageError, match="a symbolic link"):
        Predictor.load(link)  # what `score --package` loads


def test_serve_says_what_to_do_about_bad_params_no_promoted_package_or_a_bad_port(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--package", "x"]) == 1
    assert "params.yaml: params file not found" in capsys.readouterr().err
    write_params(tmp_path / "params.yaml", default_params({"serve.max_batch": 0}))
    assert main(["serve", "--package", "x"]) == 1
    assert "serve.max_batch: 0 is out of range" in capsys.readouterr().err
    write_params(tmp_path / "params.yaml", default_params())
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "prod.json").write_text('{"artifact": "flight-delay", "stage": "prod", "promoted": null}')
    assert main(["serve", "--stage", "prod"]) == 1
    assert "nothing is promoted to prod; promote a package" in capsys.readouterr().err
    monkeypatch.setenv("FLIGHTDELAY_PORT", "eighty")
    assert main(["serve", "--package", str(make_package(tmp_path / "pk", b"y"))]) == 1
    assert "FLIGHTDELAY_PORT='eighty' is not a port number" in capsys.readouterr().err


@pytest.mark.slow
def test_load_2000_requests_at_concurrency_8_without_an_error(running):
    statuses: list[int] = []
    bodies = [{"flights": [{**FLIGHT, "sched_dep_time": 100 + i % 2000}] * (1 + i % 5)} for i in range(2000)]

    async def worker(client: httpx2.AsyncClient, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await client.post("/predict", json=body)
            statuses.append(response.status_code)
            assert len(response.json()["predictions"]) == len(body["flights"])

    async def load() -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        async with httpx2.AsyncClient(base_url=running.url, timeout=60) as client:
            await asyncio.gather(*(worker(client, queue) for _ in range(8)))

    asyncio.run(load())
    assert len(statuses) == 2000 and set(statuses) == {200}
    metrics = httpx2.get(f"{running.url}/metrics").text
    assert 'flightdelay_requests_total{path="/predict",status="200"} 2000.0' in metrics


def test_serve_help_names_the_options_and_the_token(capsys):
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--package",
        "--stage",
        "--host",
        "--port",
        "--request-log",
        "--context",
        "FLIGHTDELAY_RELOAD_TOKEN",
    ):
        assert option in out
