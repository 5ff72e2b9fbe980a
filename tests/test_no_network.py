"""No network at run time: a start of the app, and a page used in Chromium, connect nowhere
but this machine.

Python's audit hooks see every socket.connect / getaddrinfo / sendto the server makes
(a sitecustomize.py on PYTHONPATH installs one in the real `streamlit run` process and
logs to a file). Streamlit, headless with a wildcard address, asks checkip.amazonaws.com
for this machine's public IP to print an "External URL"; the shipped config sets
browser.serverAddress so it never does, also when a user opens the app to a network.
"""
from __future__ import annotations

import ipaddress
import textwrap
import urllib.request

import pytest

from tests.live_app import app_server, wait_for_app

AUDIT = textwrap.dedent("""
    import os, sys
    _log = os.environ["VAE_CONNECT_LOG"]
    def _hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg"):
            with open(_log, "a") as f:
                f.write(f"{event}\\t{args[0] if event == 'socket.getaddrinfo' else args[1]!r}\\n")
    sys.addaudithook(_hook)
""")


def _outbound(log) -> list[str]:
    """Logged events whose address is not this machine (loopback, unix sockets, or a wildcard bind lookup)."""
    bad = []
    for line in log.read_text().splitlines() if log.exists() else []:
        event, _, where = line.partition("\t")
        host = where.strip("()' ").split("'")[0] if where.startswith("(") else where.strip("'\"")
        if where.startswith("'/") or where.startswith("b'") or host in ("localhost", "None", "", "0.0.0.0", "::"):
            continue  # unix socket paths, loopback by name, "any" for a bind
        try:
            if ipaddress.ip_address(host.split("%")[0]).is_loopback:
                continue
        except ValueError:
            pass
        bad.append(line)
    return bad


def _start_env(tmp_path, name):
    (tmp_path / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / f"{name}.log"
    return {"PYTHONPATH": str(tmp_path), "VAE_CONNECT_LOG": str(log)}, log


def test_the_hook_sees_an_outbound_connect(tmp_path):
    """The audit hook is live in a child process: a UDP connect to 8.8.8.8 (no packet leaves) is logged."""
    import subprocess
    import sys
    env, log = _start_env(tmp_path, "probe")
    subprocess.run([sys.executable, "-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                    "s.connect(('8.8.8.8', 1))"], env={**__import__("os").environ, **env}, check=True)
    assert _outbound(log) == ["socket.connect\t('8.8.8.8', 1)"]


@pytest.mark.parametrize("args", [(), ("--server.address", "0.0.0.0")], ids=["as-shipped", "opened-to-a-network"])
def test_a_start_connects_nowhere_but_this_machine(tmp_path, args):
    """`streamlit run app.py` as the README runs it (shipped config: localhost), and opened to a
    network with --server.address 0.0.0.0: the start and a page request make no outbound connection."""
    env, log = _start_env(tmp_path, "start")
    with app_server(env, args=args) as url:
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            assert r.status == 200
    assert log.exists() is False or _outbound(log) == []


@pytest.mark.browser
def test_using_the_app_in_chromium_connects_nowhere(tmp_path, page):
    """A browser session runs the Explore page (model load, latent cache, decoder files) with no outbound connection."""
    env, log = _start_env(tmp_path, "session")
    with app_server(env, args=()) as url:
        page.goto(url.replace("127.0.0.1", "localhost") + "/explore")
        wait_for_app(page)
        page.wait_for_selector('img[alt="decode(z)"]', timeout=60_000)
        page.goto(url.replace("127.0.0.1", "localhost") + "/grid")
        wait_for_app(page)
    assert _outbound(log) == []
