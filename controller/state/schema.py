"""The lab's one SQLite schema, as numbered migrations (PRAGMA user_version).

`migrate()` runs the missing ones in one BEGIN IMMEDIATE transaction, so two processes
opening a new lab at once do not race. Migration 1 is the schema of labs made before
versioning (CREATE ... IF NOT EXISTS): their files migrate in place.
"""
from __future__ import annotations

import sqlite3

from controller.core.errors import LabError

MIGRATIONS: list[str] = [
    # 1: image versions, scale sets, instances, the swap journal, profiles, upgrades, health
    """
CREATE TABLE IF NOT EXISTS image_versions (
    publisher TEXT NOT NULL COLLATE NOCASE,
    offer TEXT NOT NULL COLLATE NOCASE,
    sku TEXT NOT NULL COLLATE NOCASE,
    version TEXT NOT NULL,
    major INTEGER NOT NULL, minor INTEGER NOT NULL, patch INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    virtual_size_bytes INTEGER NOT NULL,
    source TEXT NOT NULL,            -- built | imported
    recipe TEXT,                     -- recipe name for built versions
    build_seconds REAL,
    exclude_from_latest INTEGER NOT NULL DEFAULT 0,
    target_regions TEXT NOT NULL,    -- JSON list
    published_at TEXT NOT NULL,
    PRIMARY KEY (publisher, offer, sku, version)
);
CREATE TABLE IF NOT EXISTS scale_sets (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    model TEXT NOT NULL,             -- the ARM-shaped JSON document
    generation INTEGER NOT NULL,     -- bumped on every model write
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    scale_set TEXT NOT NULL COLLATE NOCASE,
    instance_id INTEGER NOT NULL,
    domain TEXT NOT NULL UNIQUE,      -- libvirt domain name
    computer_name TEXT NOT NULL,
    update_domain INTEGER NOT NULL,
    fault_domain INTEGER NOT NULL,
    profile TEXT NOT NULL,            -- profiles.ref: the virtualMachineProfile applied, image version resolved
    profile_digest TEXT NOT NULL,     -- digest of the scale-set profile it came from
    os_disk TEXT NOT NULL,            -- current OS disk (qcow2 overlay)
    seed TEXT NOT NULL,               -- current NoCloud seed
    ci_instance_id TEXT NOT NULL,     -- cloud-init instance-id of the current OS disk
    ports TEXT NOT NULL,              -- JSON {guest port: host port}, all on 127.0.0.1
    provisioning_state TEXT NOT NULL, -- Creating|Updating|Succeeded|Failed|Deleting
    power_state TEXT NOT NULL,        -- wanted: running|stopped
    boot_id TEXT,
    stamp TEXT,                       -- JSON image stamp read from the guest
    extensions TEXT,                  -- JSON extension statuses read from the guest
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scale_set, instance_id),
    FOREIGN KEY (scale_set) REFERENCES scale_sets(name) ON DELETE CASCADE
);
-- Every OS-disk swap is journalled here before any step is taken (crash safety).
CREATE TABLE IF NOT EXISTS disk_swaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scale_set TEXT NOT NULL COLLATE NOCASE,
    instance_id INTEGER NOT NULL,
    kind TEXT NOT NULL,               -- reimage | upgrade | rollback
    phase TEXT NOT NULL,              -- prepared | swapped | booted | done | aborted
    old_os_disk TEXT NOT NULL, old_seed TEXT NOT NULL, old_ci_instance_id TEXT NOT NULL,
    old_profile TEXT NOT NULL, old_digest TEXT NOT NULL,
    new_os_disk TEXT NOT NULL, new_seed TEXT NOT NULL, new_ci_instance_id TEXT NOT NULL,
    new_profile TEXT NOT NULL, new_digest TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT
);
-- Applied profiles, by content: instances.profile and disk_swaps.*_profile hold their ref.
CREATE TABLE IF NOT EXISTS profiles (
    ref TEXT PRIMARY KEY,             -- sha256: of the JSON text
    profile TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS disk_swaps_by_instance ON disk_swaps (scale_set, instance_id, phase);
CREATE TABLE IF NOT EXISTS rolling_upgrades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scale_set TEXT NOT NULL COLLATE NOCASE,
    status TEXT NOT NULL,              -- RollingForward | Cancelled | Completed | Faulted
    started_by TEXT NOT NULL,          -- User | Platform
    target TEXT NOT NULL,              -- JSON {publisher, offer, sku, version}
    policy TEXT NOT NULL,              -- JSON rollingUpgradePolicy at the start
    auto_rollback INTEGER NOT NULL,
    start_time TEXT NOT NULL,
    end_time TEXT,
    error_code TEXT, error_message TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner TEXT,                        -- pid:starttime of the process driving it
    batches_done INTEGER NOT NULL DEFAULT 0,
    batch_times TEXT NOT NULL DEFAULT '[]',  -- JSON [{batch, wall, slowest, instances}]
    rollback_error TEXT,
    started_epoch REAL NOT NULL,       -- precise times for the overhead figures
    ended_epoch REAL
);
CREATE TABLE IF NOT EXISTS upgrade_instances (
    upgrade_id INTEGER NOT NULL REFERENCES rolling_upgrades(id) ON DELETE CASCADE,
    instance_id INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    state TEXT NOT NULL,   -- InProgress | Succeeded | Failed | RolledBack | RollbackFailed
    swap_id INTEGER,
    error TEXT,
    timings TEXT NOT NULL DEFAULT '{}',   -- JSON seconds: swap, boot, health, rollback
    PRIMARY KEY (upgrade_id, instance_id)
);
-- states() before every batch reads this index alone, not a thousand rows with their timings
CREATE INDEX IF NOT EXISTS upgrade_instance_states ON upgrade_instances (upgrade_id, instance_id, state);
CREATE TABLE IF NOT EXISTS health (
    scale_set TEXT NOT NULL COLLATE NOCASE,
    instance_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT,
    checked_at TEXT NOT NULL,
    PRIMARY KEY (scale_set, instance_id)
);
""",
    # 2: when each upgraded instance started (the web view's timeline); the web view's used login links
    """
ALTER TABLE upgrade_instances ADD COLUMN started_epoch REAL;
CREATE TABLE IF NOT EXISTS login_tickets (
    jti TEXT PRIMARY KEY,             -- a one-time login link's id, kept until it expires
    expires REAL NOT NULL
);
""",
    # 3: an instance's protectionPolicy (set by the user on the instance, never by the model)
    """
ALTER TABLE instances ADD COLUMN protect_from_scale_in INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN protect_from_scale_set_actions INTEGER NOT NULL DEFAULT 0;
""",
    # 4: MaxSurge: the new instance that replaces an upgraded one, and how far the replacement got
    """
ALTER TABLE upgrade_instances ADD COLUMN surge_id INTEGER;
ALTER TABLE upgrade_instances ADD COLUMN surge_phase TEXT;  -- creating | retiring (old goes) | discarding (new goes)
""",
    # 5: regions of libvirt hosts (`local` is not stored: it is always there)
    """
CREATE TABLE IF NOT EXISTS regions (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS region_hosts (
    region TEXT NOT NULL COLLATE NOCASE REFERENCES regions(name) ON DELETE CASCADE,
    position INTEGER NOT NULL,        -- the host's fault domain in the region: 0, 1, ...
    uri TEXT NOT NULL,                -- libvirt URI
    pool TEXT NOT NULL,               -- storage pool name
    pool_path TEXT,                   -- where a dir pool of that name is made
    ssh TEXT,                         -- [user@]host[:port] for tunnels to the guests
    PRIMARY KEY (region, position),
    UNIQUE (region, uri, pool)
);
""",
    # 6: the libvirt host each instance lives on (its region's host of its fault domain); NULL: local
    """
ALTER TABLE instances ADD COLUMN host_uri TEXT;    -- libvirt URI; NULL: the lab's own libvirt
ALTER TABLE instances ADD COLUMN host_pool TEXT;   -- storage pool on that host; NULL: the local pool
""",
    # 7: image replicas: one image version's copy in one host's pool (what `image replicate` did)
    """
CREATE TABLE IF NOT EXISTS image_replicas (
    publisher TEXT NOT NULL COLLATE NOCASE,
    offer TEXT NOT NULL COLLATE NOCASE,
    sku TEXT NOT NULL COLLATE NOCASE,
    version TEXT NOT NULL,
    region TEXT NOT NULL COLLATE NOCASE,  -- the target region the host was replicated for
    host_uri TEXT NOT NULL,               -- libvirt URI of the host
    pool TEXT NOT NULL,                   -- storage pool on that host
    volume TEXT NOT NULL,                 -- the replica's volume name (ImageVersion.volume_name)
    state TEXT NOT NULL,                  -- Replicating | Completed | Failed
    details TEXT NOT NULL DEFAULT '',
    bytes INTEGER NOT NULL DEFAULT 0,     -- bytes uploaded (0: the copy there was good)
    seconds REAL NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (publisher, offer, sku, version, host_uri, pool)
);
""",
    # 8: the API's long-running operations, kept across restarts (state/operations.py)
    """
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                -- create | update | delete | reimage | osRollingUpgrade | ...
    resource TEXT NOT NULL COLLATE NOCASE,  -- the ARM id it works on
    location TEXT NOT NULL,
    status TEXT NOT NULL,              -- InProgress | Succeeded | Failed | Canceled
    error TEXT,                        -- JSON {code, message, target}
    owner TEXT NOT NULL,               -- pid:starttime of the process running it
    start_time TEXT NOT NULL,
    end_time TEXT,
    ended_epoch REAL                   -- wall-clock end (retention is counted from it)
);
CREATE INDEX IF NOT EXISTS operations_by_end ON operations (ended_epoch);
CREATE INDEX IF NOT EXISTS operations_by_status ON operations (status);
""",
    # 9: template deployments and their per-resource operations (state/deployments.py)
    """
CREATE TABLE IF NOT EXISTS deployments (
    resource_group TEXT NOT NULL COLLATE NOCASE,
    name TEXT NOT NULL COLLATE NOCASE,
    run_id TEXT NOT NULL,              -- the operationStatuses id of the latest PUT
    template TEXT NOT NULL,            -- JSON: the template as given (exportTemplate)
    parameters TEXT NOT NULL,          -- JSON: Prepared.parameters_record() (no secure value)
    mode TEXT NOT NULL,
    state TEXT NOT NULL,               -- Accepted | Running | Succeeded | Failed | Canceled
    outputs TEXT,                      -- JSON
    output_resources TEXT NOT NULL DEFAULT '[]',  -- JSON list of ids
    error TEXT,                        -- JSON {code, message, details}
    correlation_id TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    started_epoch REAL NOT NULL,
    duration REAL,                     -- seconds, once it ended
    generation INTEGER NOT NULL,       -- the etag's: bumped on every write of the record
    owner TEXT NOT NULL,               -- pid:starttime of the process running it
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_group, name)
);
CREATE TABLE IF NOT EXISTS deployment_operations (
    resource_group TEXT NOT NULL COLLATE NOCASE,
    deployment TEXT NOT NULL COLLATE NOCASE,
    operation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    resource_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    provisioning_operation TEXT NOT NULL,   -- Create | Update (ARM's names)
    state TEXT NOT NULL,                    -- Running | Succeeded | Failed
    status_code TEXT,
    status_message TEXT,                    -- JSON
    timestamp TEXT NOT NULL,
    started_epoch REAL NOT NULL,
    duration REAL,
    PRIMARY KEY (resource_group, deployment, operation_id),
    FOREIGN KEY (resource_group, deployment) REFERENCES deployments(resource_group, name) ON DELETE CASCADE
);
""",
]
LATEST = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """The statements of a migration (no executescript: it would commit an open transaction)."""
    out, buf = [], ""
    for line in script.splitlines():
        buf += line.split("--", 1)[0] + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s.strip(" ;\n")]


def migrate(conn: sqlite3.Connection, path: object) -> None:
    """Bring the database to LATEST; a database from a newer lab is refused, not touched."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == LATEST:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = conn.execute("PRAGMA user_version").fetchone()[0]
        if have > LATEST:
            raise LabError(str(path), f"schema version {have} is newer than this scaleset-lab knows ({LATEST}); "
                                      "upgrade scaleset-lab", "StateCorrupt")
        for n in range(have, LATEST):
            for stmt in statements(MIGRATIONS[n]):
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version={LATEST}")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
