-- Maintenance mode (README "Autoscaler", "Maintenance mode"): a cluster, or one member of it, whose
-- faults the autoscaler logs and shows but does not act on; for a whole cluster the minimum rule and
-- the scaling rule pause too. Written by the stack's supervisor (`faultline maintenance on|off`), read
-- whole by the acting autoscaler node at every monitor tick: this table is the truth, no message
-- carries it, so a restart or a takeover by the other node keeps it.
CREATE TABLE IF NOT EXISTS autoscaler_maintenance (
  cluster_id text NOT NULL CHECK (cluster_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
  -- NULL: the whole cluster; else one member of it.
  member_id  text CHECK (member_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
  -- Why, as the operator gave it (`--reason`); may be empty.
  reason     text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
  -- Who: the user (and host) of the `faultline` command that set it.
  set_by     text NOT NULL CHECK (length(set_by) BETWEEN 1 AND 200),
  -- When it began (database time); a second `on` keeps it and updates reason and set_by.
  set_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One row per cluster (member_id NULL) and per member.
CREATE UNIQUE INDEX IF NOT EXISTS autoscaler_maintenance_key
  ON autoscaler_maintenance (cluster_id, (coalesce(member_id, '')));
