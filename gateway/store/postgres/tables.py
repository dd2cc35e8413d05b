"""The shared store's tables, as numbered migrations (``gateway store migrate`` applies them).

One database holds what the embedded backend keeps in three SQLite files: the hold store
(holds and their bodies, the relay journal, the audit trail, the outbox, the delivery queue
and its bodies, the last probes), the MTA-STS policy cache and the accounts (users, the
sign-in throttle, web sessions). Bodies and notices are ``bytea``, sealed with AES-256-GCM by
the node (``store.crypto``) under a key the database never sees.

Times are seconds since the epoch (``double precision``), as everywhere in the gateway. JSON
that the store searches (a hold's recipients) is ``jsonb``; JSON it only keeps is ``text``,
written and read exactly as the embedded backend does (``store.schema``). PostgreSQL text cannot
hold U+0000, which a hostile header can decode to: the store writes free text through
``text_value``.

A change is a new step at the end of ``MIGRATIONS``, never an edit of an old one.
"""

from __future__ import annotations

VERSION_1 = """
CREATE TABLE holds (
    id            text PRIMARY KEY,
    key           text NOT NULL UNIQUE,
    status        text NOT NULL,
    created_at    double precision NOT NULL,
    sender        text NOT NULL,
    recipients    jsonb NOT NULL,    -- list of {address, domain, reasons, options}
    mail_options  text NOT NULL,     -- JSON list
    size          bigint NOT NULL,
    client        text NOT NULL,
    message_id    text NOT NULL,
    findings      text NOT NULL,     -- JSON list
    facts         text NOT NULL,     -- JSON object
    subject       text NOT NULL DEFAULT '',
    decided_at    double precision,
    decided_by    text NOT NULL DEFAULT '',
    decision      text NOT NULL DEFAULT '',
    escalated_at  double precision,
    purged_at     double precision,
    delivered     text NOT NULL DEFAULT '[]',
    refused       text NOT NULL DEFAULT '{}',
    last_error    text NOT NULL DEFAULT '',
    attempt_at    double precision,
    attempt_by    text NOT NULL DEFAULT ''
);
CREATE INDEX holds_status ON holds (status, created_at);
CREATE INDEX holds_created ON holds (created_at, id);

-- The sealed message of a hold; deleted when the body is purged (the hold's row stays).
CREATE TABLE hold_bodies (
    hold_id       text PRIMARY KEY,
    body          bytea NOT NULL
);

CREATE TABLE relay_journal (
    key           text NOT NULL,
    recipient     text NOT NULL,
    at            double precision NOT NULL,
    PRIMARY KEY (key, recipient)
);
CREATE INDEX relay_journal_at ON relay_journal (at);

-- One chain for every node: appends take the AUDIT_LOCK advisory lock (database.py).
CREATE TABLE audit (
    seq           bigint PRIMARY KEY,
    at            double precision NOT NULL,
    event         text NOT NULL,
    hold_id       text NOT NULL,
    actor         text NOT NULL,
    data          text NOT NULL,     -- JSON object, exactly as sealed (sort_keys)
    prev          text NOT NULL,
    hash          text NOT NULL,
    search        text NOT NULL      -- lower case, as shown: what word search reads (trail.py)
);
CREATE INDEX audit_hold_seq ON audit (hold_id, seq);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE outbox (
    id            text PRIMARY KEY,
    kind          text NOT NULL,
    hold_id       text NOT NULL,
    sender        text NOT NULL,
    recipients    text NOT NULL,     -- JSON list
    message       bytea NOT NULL,    -- sealed: a notice may name people
    created_at    double precision NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    next_at       double precision NOT NULL,
    sent_at       double precision,
    last_error    text NOT NULL DEFAULT '',
    claimed_by    text NOT NULL DEFAULT '',
    -- Insertion order: a hold's notices share created_at and go out in the order queued.
    seq           bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE sent_at IS NULL;

CREATE TABLE probe_results (
    domain        text PRIMARY KEY,
    at            double precision NOT NULL,
    secure        boolean NOT NULL,
    summary       text NOT NULL,
    hosts         text NOT NULL      -- JSON list of per-host facts
);

CREATE TABLE queue (
    id            text PRIMARY KEY,
    key           text NOT NULL UNIQUE,
    created_at    double precision NOT NULL,
    entry         text NOT NULL,     -- JSON: sender, recipients and their states, options, ...
    attempts      integer NOT NULL DEFAULT 0,
    next_at       double precision NOT NULL,
    last_error    text NOT NULL DEFAULT '',
    lease_until   double precision,
    lease_by      text NOT NULL DEFAULT '',
    done_at       double precision
);
CREATE INDEX queue_due ON queue (next_at) WHERE done_at IS NULL;
CREATE INDEX queue_created ON queue (created_at);

-- The sealed message of a queue entry; deleted when the entry is finished.
CREATE TABLE queue_bodies (
    queue_id      text PRIMARY KEY,
    body          bytea NOT NULL
);

CREATE TABLE sts_policy (
    domain        text PRIMARY KEY,
    id            text NOT NULL,
    policy        text NOT NULL,
    fetched_at    double precision NOT NULL,
    expires_at    double precision NOT NULL
);
CREATE TABLE sts_failure (
    domain        text PRIMARY KEY,
    id            text NOT NULL,
    at            double precision NOT NULL,
    status        text NOT NULL,
    error         text NOT NULL,
    temporary     boolean NOT NULL
);

CREATE TABLE users (
    name          text PRIMARY KEY,
    role          text NOT NULL,
    hash          text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    double precision NOT NULL,
    password_at   double precision NOT NULL,
    signed_in_at  double precision
);
CREATE TABLE sign_in_failures (
    key           text PRIMARY KEY,  -- "user:<name>" or "addr:<ip>"
    failures      integer NOT NULL,
    last_at       double precision NOT NULL
);
-- "user" is a reserved word in PostgreSQL: the column is user_name.
CREATE TABLE sessions (
    key           text PRIMARY KEY,  -- SHA-256 of the session id, hex
    user_name     text NOT NULL,
    csrf          text NOT NULL,
    client        text NOT NULL,
    created_at    double precision NOT NULL,
    seen_at       double precision NOT NULL,
    flash         text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_name);
"""

# Secure links (issue 12): one row per link, only digests of its token and current code; the
# codes sent, one row each, for the portal's limit per address over all its links. The
# partial index holds only the links the unopened sweep may still have to tell about.
SECURE_LINKS = """
CREATE TABLE secure_links (
    id                  text PRIMARY KEY,
    hold_id             text NOT NULL,
    position            integer NOT NULL,
    recipient           text NOT NULL,
    token_digest        text NOT NULL UNIQUE,
    created_at          double precision NOT NULL,
    created_by          text NOT NULL,
    expires_at          double precision NOT NULL,
    code_digest         text NOT NULL DEFAULT '',
    code_expires_at     double precision NOT NULL DEFAULT 0,
    code_attempts       integer NOT NULL DEFAULT 0,
    codes_sent          integer NOT NULL DEFAULT 0,
    code_sent_at        double precision,
    revoked_at          double precision,
    revoked_by          text NOT NULL DEFAULT '',
    locked_at           double precision,
    opened_at           double precision,
    unopened_noticed_at double precision
);
CREATE INDEX secure_links_hold ON secure_links (hold_id, position);
CREATE INDEX secure_links_unopened ON secure_links (created_at, position)
    WHERE opened_at IS NULL AND revoked_at IS NULL AND unopened_noticed_at IS NULL;
CREATE TABLE link_codes (
    link_id             text NOT NULL,
    number              integer NOT NULL,   -- the link's first code, second, ...
    address             text NOT NULL,
    sent_at             double precision NOT NULL,
    PRIMARY KEY (link_id, number)
);
CREATE INDEX link_codes_address ON link_codes (address, sent_at);
"""

MIGRATIONS: tuple[str, ...] = (VERSION_1, SECURE_LINKS)
SCHEMA_VERSION = len(MIGRATIONS)


def text_value(value: str) -> str:
    """Free text as PostgreSQL can keep it: U+0000 (which text refuses) becomes U+FFFD."""
    return value.replace("\x00", "\ufffd")
