-- What a cluster monitor must remember across an autoscaler restart besides its
-- members: the replacement backoff, the fault-storm hold and the faults held
-- (in a storm, or while the detector is silent). One JSON document per cluster,
-- written by packages/autoscaler/src/pg-registry.ts, read and validated at start.
CREATE TABLE IF NOT EXISTS autoscaler_cluster (
  cluster_id text PRIMARY KEY,
  state      jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
