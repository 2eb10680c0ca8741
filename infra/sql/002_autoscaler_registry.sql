-- The autoscaler's member registry (README "Autoscaler"): a restarted
-- autoscaler adopts the members that still run instead of orphaning them.
-- Written by packages/autoscaler/src/pg-registry.ts; read by `faultline stack status`.

-- One row per member ever created (terminated rows are kept for a while, then pruned).
CREATE TABLE IF NOT EXISTS autoscaler_member (
  member_id            text PRIMARY KEY,
  cluster_id           text NOT NULL,
  cluster_instance_id  text NOT NULL,
  network_partition_id text NOT NULL,
  partition_id         text NOT NULL,
  cartridge_type       text NOT NULL,
  state                text NOT NULL
    CHECK (state IN ('Created', 'Starting', 'Active', 'Terminating', 'Terminated')),
  -- The cloud controller's MemberInstance: driver, address, and the driver's handle
  -- (local: boot id, process group, pids with start times). NULL until the spawn returned.
  instance             jsonb,
  -- Why it is Terminating or Terminated.
  reason               text,
  created_at           timestamptz NOT NULL,
  activated_at         timestamptz,
  terminated_at        timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS autoscaler_member_live
  ON autoscaler_member (cluster_id, created_at) WHERE state <> 'Terminated';

-- Every decision, as logged: the last ones are what `stack status` shows.
CREATE TABLE IF NOT EXISTS autoscaler_action (
  id         bigserial PRIMARY KEY,
  at         timestamptz NOT NULL,
  action     text NOT NULL,
  cluster_id text NOT NULL,
  member_id  text,
  reason     text NOT NULL,
  -- The SP leader epoch of the event that caused it, when one did.
  epoch      bigint
);

-- The newest SP leader epoch seen (one row), so a restarted autoscaler keeps fencing old leaders.
CREATE TABLE IF NOT EXISTS autoscaler_fence (
  id           boolean PRIMARY KEY DEFAULT true CHECK (id),
  newest_epoch bigint NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
