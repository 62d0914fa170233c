"""Every numeric limit of the server, each with the reason for its value.

Owns: constants only. Must not: import anything from the project, so that
every module (sans-IO protocol included) can read them.
"""

# --- protocol (docs/protocol.md §1, §4, §8) ------------------------------------

#: Longest line, terminator included. 4 KiB holds any chat message a person
#: types and bounds the memory one half-sent line can pin (docs/protocol.md §8).
MAX_LINE = 4096

#: Names are short so they fit in a prompt and a tab title (docs/protocol.md §3).
MAX_NAME = 32

#: `/history` default and ceiling (docs/protocol.md §4): 500 lines fill a screen many
#: times over. One such reply can reach ~2 MiB, so replies to a client's own
#: commands do not count against --max-outbuf (reactor/net/connection.py).
HISTORY_DEFAULT = 50
HISTORY_MAX = 500

# --- protections (docs/protocol.md §8 defaults) -----------------------------------

#: Output buffered for one connection before it counts as a slow consumer.
MAX_OUTBUF = 1 << 20
#: Token bucket: sustained commands per second and burst per connection.
RATE_LIMIT = 20.0
RATE_BURST = 100
#: Seconds a new connection has to log in.
LOGIN_TIMEOUT = 30.0
#: Failed logins on one connection before it is closed.
MAX_LOGIN_FAILURES = 5
#: Open connections before new ones get `bye server_full`.
MAX_CLIENTS = 10_000
#: Worker threads running commands.
WORKERS = 4

#: A pool job runs up to this many connections' batches of one loop pass,
#: then commits once and posts once for all of them: the per-line cost of a
#: queue put, a commit, a post and a wake-up does not grow with the number
#: of connections the lines came from, and a pass of 1,000 connections
#: still spreads over the workers (a command that blocks holds up 63 others
#: at most).
JOB_CONNECTIONS = 1024

#: The password lane: batches with a `/register` or `/login` (scrypt, ~33 ms
#: of CPU each) run on threads of their own, so chat never queues behind
#: hashing. Two threads: hashing releases the GIL, and this machine class
#: has two cores; more would only queue inside the kernel.
LANE_WORKERS = 2
#: Batches the lane holds at once, running or waiting; one more is answered
#: `busy` at once. A classroom logs in together (sixty at once is common), and
#: the last of 64 waits ~32 hashes' time on two threads (~1 s), still far
#: inside any client's patience; a flood past that is told `busy` and costs
#: no CPU.
LANE_CAPACITY = 64

#: Per client address (IRC servers limit the same way: ngIRCd's
#: MaxConnectionsIP, Ergo's max-concurrent-connections): connections not yet
#: logged in. One more is turned away with `bye server_full`. A classroom
#: behind one NAT opens a few dozen at once; an attacker opens thousands.
MAX_UNAUTHENTICATED_PER_ADDRESS = 16
#: Per client address: `/login` and `/register` lines per second, and the
#: burst above that (a token bucket shared by all its connections), so new
#: connections cannot dodge the per-connection rate limit. Over it:
#: `rate_limited`. A person types one login; a class behind one NAT, 30 at once.
LOGINS_PER_ADDRESS_RATE = 5.0
LOGINS_PER_ADDRESS_BURST = 30
#: Addresses the per-address limits do not apply to: loopback, so classroom
#: demos, tests and a load generator on one machine keep working (the lane's
#: bound is what protects the server from them).
LIMIT_EXEMPT = ("127.0.0.0/8", "::1/128")

# --- reactor internals -----------------------------------------------------

#: Bytes asked of one recv(). Measured here: recv(262144) costs ~11 us more per
#: call than recv(65536), because glibc maps and unmaps a buffer that large.
RECV_SIZE = 65536

#: Bytes written to one connection per loop pass, so a client with a large
#: backlog cannot starve the others (Redis caps writes per event the same way).
WRITE_CAP = 256 * 1024

#: Commands waiting for one connection before the reactor stops reading it.
#: A client that pipelines faster than workers run its commands is slowed at
#: the socket (TCP pushes back), instead of growing server memory.
MAX_PENDING_COMMANDS = 1024

#: Upper bound on one select() wait, so timers and shutdown are never late by
#: more than this even if the timer heap were empty.
MAX_POLL_SECONDS = 1.0

#: After accept() fails for lack of file descriptors, stop accepting this long
#: (and log once per pause) instead of spinning on the error.
ACCEPT_BACKOFF_SECONDS = 0.1

#: A connection being closed gets this long to take its last bytes (the
#: `bye` line) before the socket is closed anyway.
CLOSE_LINGER_SECONDS = 5.0

#: Graceful shutdown: time to answer what is in flight and flush `bye`.
SHUTDOWN_GRACE_SECONDS = 10.0
#: After every `bye` is written at shutdown, peers get this long to close
#: their end before ours closes (with unread input, close() sends RST).
SHUTDOWN_LINGER_SECONDS = 1.0

#: A lock wait longer than this is reported by the watchdog with its
#: wait-for graph. Commands hold locks for microseconds to milliseconds, so
#: 2 s is unmistakably stuck. The `inverted` demo strategy gives up after
#: four times this, so the watchdog speaks first.
WATCHDOG_SECONDS = 2.0

# --- storage -----------------------------------------------------------------

#: How long a write waits for another process's lock on the database file
#: (SQLITE_BUSY) before failing with `internal`. It waits holding the
#: ``storage`` lock, so every writer waits with it: keep it short.
SQLITE_BUSY_SECONDS = 1.0

#: scrypt cost (RFC 7914): n=2**14, r=8, p=1 takes ~33 ms and 16 MiB here,
#: the interactive-login setting that RFC recommends.
SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_SALT_BYTES = 16
SCRYPT_KEY_BYTES = 32

# --- cluster (reactor/cluster) ---------------------------------------------------

#: How long a node waits to connect to PostgreSQL. A connection is made
#: holding the ``storage`` lock, so every writer of the node waits with it;
#: a few seconds tells "down" from "slow" without freezing the node.
PG_CONNECT_SECONDS = 3
#: A node reads others' commits from PostgreSQL at least this often, even if
#: no notification came (the bus is down, or its message was lost): the
#: worst added delay of a message when Redis is gone.
CLUSTER_POLL_SECONDS = 1.0
#: A node's heartbeat in the ``nodes`` table; a node not seen for
#: NODE_ALIVE_SECONDS is dead (killed), and its sessions no longer count as
#: online in `/users`. Five missed beats: a busy node is not taken for dead.
HEARTBEAT_SECONDS = 2.0
NODE_ALIVE_SECONDS = 10.0
#: Waits between attempts to reach Redis again after it went away: the
#: first retry at once (a restart is quick), then up to this much.
BUS_RETRY_MAX_SECONDS = 2.0
#: Rows read from PostgreSQL per catch-up query, so a node far behind
#: (after a long outage) delivers in slices, not in one huge list.
CATCH_UP_ROWS = 1000
