// Versioned schema migrations, applied in order at start. Append only: a released migration is
// never edited, so every database converges on the same schema.

export const SQLITE_MIGRATIONS: readonly string[] = [
  `CREATE TABLE dispatches (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    flow_run_id TEXT NOT NULL,
    flow_run_name TEXT,
    pool TEXT NOT NULL,
    deployment_id TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at TEXT,
    project TEXT,
    region TEXT,
    job_name TEXT,
    execution_name TEXT,
    log_uri TEXT,
    job_spec TEXT,
    error TEXT,
    received_at TEXT NOT NULL,
    launched_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE INDEX dispatches_created ON dispatches (created_at DESC, id DESC);
  CREATE INDEX dispatches_flow_run ON dispatches (flow_run_id, created_at DESC);
  CREATE INDEX dispatches_state_due ON dispatches (state, due_at);
  CREATE TABLE dispatch_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dispatch_id TEXT NOT NULL REFERENCES dispatches (id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    detail TEXT NOT NULL,
    reply TEXT
  );
  CREATE INDEX dispatch_events_dispatch ON dispatch_events (dispatch_id, seq);`,
  // 2: per-run jobs the pool asked to keep are left alone by retention.
  'ALTER TABLE dispatches ADD COLUMN keep_job INTEGER NOT NULL DEFAULT 0',
  // 3: whether an earlier launch attempt may have left an execution; true unless proven otherwise.
  'ALTER TABLE dispatches ADD COLUMN launch_uncertain INTEGER NOT NULL DEFAULT 1',
  // 4: one name for "an execution may exist" across the code; the GCP identity a launch used
  // (where to find it again, never key material), so reconcile and cancel need not re-render.
  `ALTER TABLE dispatches RENAME COLUMN launch_uncertain TO execution_may_exist;
  ALTER TABLE dispatches ADD COLUMN gcp_identity TEXT;`,
  // 5: who drives a dispatch and until when (a lease whose token fences out an earlier holder), and
  // whether its run's cancellation was requested (the one-at-a-time mark of a cancel).
  `ALTER TABLE dispatches ADD COLUMN lease_owner TEXT;
  ALTER TABLE dispatches ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE dispatches ADD COLUMN lease_expires_at TEXT;
  ALTER TABLE dispatches ADD COLUMN cancel_requested_at TEXT;`,
  // 6: what operators read in a listing: when the run was due (launch latency counts from it) and the
  // names of its deployment and flow.
  `ALTER TABLE dispatches ADD COLUMN scheduled_at TEXT;
  ALTER TABLE dispatches ADD COLUMN deployment_name TEXT;
  ALTER TABLE dispatches ADD COLUMN flow_name TEXT;`
]

// PostgreSQL has real types where SQLite has text: timestamptz(3) keeps the millisecond precision
// the ISO strings (and the listing cursor built from them) carry, and jsonb holds the JSON fields.
export const POSTGRES_MIGRATIONS: readonly string[] = [
  `CREATE TABLE dispatches (
    id text PRIMARY KEY,
    key text NOT NULL UNIQUE,
    flow_run_id text NOT NULL,
    flow_run_name text,
    pool text NOT NULL,
    deployment_id text,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    due_at timestamptz(3),
    project text,
    region text,
    job_name text,
    execution_name text,
    log_uri text,
    job_spec jsonb,
    error text,
    received_at timestamptz(3) NOT NULL,
    launched_at timestamptz(3),
    created_at timestamptz(3) NOT NULL,
    updated_at timestamptz(3) NOT NULL
  );
  CREATE INDEX dispatches_created ON dispatches (created_at DESC, id DESC);
  CREATE INDEX dispatches_flow_run ON dispatches (flow_run_id, created_at DESC);
  CREATE INDEX dispatches_state_due ON dispatches (state, due_at);
  CREATE TABLE dispatch_events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dispatch_id text NOT NULL REFERENCES dispatches (id) ON DELETE CASCADE,
    at timestamptz(3) NOT NULL,
    type text NOT NULL,
    from_state text,
    to_state text,
    detail text NOT NULL,
    reply jsonb
  );
  CREATE INDEX dispatch_events_dispatch ON dispatch_events (dispatch_id, seq);`,
  // 2: per-run jobs the pool asked to keep are left alone by retention.
  'ALTER TABLE dispatches ADD COLUMN keep_job boolean NOT NULL DEFAULT false',
  // 3: whether an earlier launch attempt may have left an execution; true unless proven otherwise.
  'ALTER TABLE dispatches ADD COLUMN launch_uncertain boolean NOT NULL DEFAULT true',
  // 4: one name for "an execution may exist" across the code; the GCP identity a launch used
  // (where to find it again, never key material), so reconcile and cancel need not re-render.
  `ALTER TABLE dispatches RENAME COLUMN launch_uncertain TO execution_may_exist;
  ALTER TABLE dispatches ADD COLUMN gcp_identity jsonb;`,
  // 5: who drives a dispatch and until when (a lease whose token fences out an earlier holder), and
  // whether its run's cancellation was requested (the one-at-a-time mark of a cancel).
  `ALTER TABLE dispatches ADD COLUMN lease_owner text;
  ALTER TABLE dispatches ADD COLUMN lease_token bigint NOT NULL DEFAULT 0;
  ALTER TABLE dispatches ADD COLUMN lease_expires_at timestamptz(3);
  ALTER TABLE dispatches ADD COLUMN cancel_requested_at timestamptz(3);`,
  // 6: what operators read in a listing: when the run was due (launch latency counts from it) and the
  // names of its deployment and flow.
  `ALTER TABLE dispatches ADD COLUMN scheduled_at timestamptz(3);
  ALTER TABLE dispatches ADD COLUMN deployment_name text;
  ALTER TABLE dispatches ADD COLUMN flow_name text;`
]
