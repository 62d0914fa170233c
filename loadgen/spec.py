"""What a load run is: `LoadSpec` and the checks it must pass before it runs.

Owns: the fields of a run (who, how many, which traffic, how long, where: one port
or several on one host),
their defaults and the checks a spec must pass (`check_spec`: every problem
in words for a person, and loopback only), the address it resolves to
(`loopback`) and the number of load processes it uses (`default_procs`).
Must not: import the rest of loadgen (loadgen/run.py, loadgen/users.py and
loadgen/wire.py import us), open a socket or start a process.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass

__all__ = ["KINDS", "MODES", "LoadSpec", "check_spec", "default_procs", "loopback"]

KINDS = ("private", "group")
MODES = ("closed", "open", "idle")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


@dataclass(frozen=True)
class LoadSpec:
    """What to run. See loadgen/run.py for the phases of a run and its result."""

    host: str = "127.0.0.1"
    port: int = 9000
    # More servers on `host` (the nodes of a cluster): the clients are spread over
    # (port, *extra_ports), client i on the (i mod n)-th; () keeps them all on `port`.
    extra_ports: tuple[int, ...] = ()
    clients: int = 100
    mode: str = "closed"  # "closed" | "open" | "idle"
    mix: tuple[tuple[str, float], ...] = (("private", 1.0),)  # kinds private/group; weights sum 1
    window: int = 8  # closed loop: sends in flight (no reply yet) per client
    rate: float = 2000.0  # open loop: offered sends/s in total over all clients
    duration: float = 10.0  # measured seconds
    warmup: float = 0.5  # seconds of load before measuring starts
    groups: int = 4  # group traffic: clients 0..groups*group_size-1 form `groups` groups
    group_size: int = 50  # members per group (clients past groups*group_size send private only)
    procs: int = 0  # load processes; 0: min(4, usable CPUs), never more than clients
    cpus: tuple[int, ...] | None = None  # pin every load process to these CPUs
    password: str | None = None  # None: `/login <name>` (--auth none); else /register + /login
    prefix: str = "lg"  # users f"{prefix}{i}", groups f"{prefix}g{j}"
    drain: float = 10.0  # max seconds to wait for outstanding oks/deliveries after the end
    text_bytes: int = 32  # approximate length of each message text
    progress: bool = False  # print a live line once a second to stderr


def default_procs(spec: LoadSpec) -> int:
    """The number of load processes `run` uses for `spec`."""
    n = spec.procs or min(4, len(spec.cpus or os.sched_getaffinity(0)))
    return max(1, min(n, spec.clients))


def loopback(host: str, port: int) -> tuple[int, tuple]:
    """(address family, socket address) of `host:port`; ValueError if it
    does not resolve or is not a loopback address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(f"cannot resolve host {host!r}: {e}") from None
    family, _, _, _, addr = infos[0]
    if not ipaddress.ip_address(addr[0]).is_loopback:
        raise ValueError(f"refusing to load {host} ({addr[0]}): only loopback addresses")
    return family, addr


def check_spec(spec: LoadSpec) -> None:
    """Reject a spec that cannot run; raises ValueError with a message for a person."""
    kinds = [k for k, _ in spec.mix]
    weights = [w for _, w in spec.mix]
    usable = os.sched_getaffinity(0)
    problems = [
        (spec.clients < 1, "clients must be at least 1"),
        (spec.mode not in MODES, f"mode must be one of {', '.join(MODES)}"),
        (not spec.mix or any(k not in KINDS for k in kinds), f"mix kinds are {', '.join(KINDS)}"),
        (len(set(kinds)) != len(kinds), "a mix kind is given twice"),
        (any(w < 0 for w in weights) or abs(sum(weights) - 1) > 0.01, "mix weights must sum to 1"),
        (spec.window < 1, "window must be at least 1"),
        (spec.mode == "open" and spec.rate <= 0, "rate must be positive"),
        (spec.duration <= 0 or spec.warmup < 0 or spec.drain < 0, "bad duration/warmup/drain"),
        (spec.procs < 0, "procs must be 0 (default) or more"),
        (
            spec.cpus is not None and not (spec.cpus and set(spec.cpus) <= usable),
            f"cpus must be some of the usable CPUs {sorted(usable)}",
        ),
        (spec.text_bytes < 0, "text_bytes must be 0 or more"),
        (any(not 0 < p < 65536 for p in spec.extra_ports), "extra ports must be 1..65535"),
        (not _NAME.fullmatch(f"{spec.prefix}g{spec.clients}"), "prefix: letters, digits, _.-"),
        (spec.password is not None and not re.fullmatch(r"\S+", spec.password), "bad password"),
    ]
    if spec.mode != "idle" and dict(spec.mix).get("private", 0) > 0:
        problems.append((spec.clients < 2, "private traffic needs at least 2 clients"))
    if spec.mode != "idle" and dict(spec.mix).get("group", 0) > 0:
        need = spec.groups * spec.group_size
        problems += [
            (spec.groups < 1 or spec.group_size < 2, "groups >= 1 and group_size >= 2"),
            (
                spec.clients < need,
                f"group traffic needs clients >= groups*group_size"
                f" ({spec.groups}*{spec.group_size}={need} > {spec.clients} clients)",
            ),
        ]
    for bad, message in problems:
        if bad:
            raise ValueError(message)
    loopback(spec.host, spec.port)
