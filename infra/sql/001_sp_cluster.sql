-- Cluster database of the stream-processor pair (README "Stream processor: the active/passive pair").
-- Only database time (clock_timestamp()) decides expiry; node clocks never do.

-- One row per SP group: who leads, under which fencing epoch, last renewal.
CREATE TABLE IF NOT EXISTS sp_leader (
  group_id      text PRIMARY KEY,
  node_id       text NOT NULL,
  epoch         bigint NOT NULL CHECK (epoch > 0),
  heartbeat_at  timestamptz NOT NULL
);

-- One row per SP node: liveness, role as last reported, where its peer can sync from it.
CREATE TABLE IF NOT EXISTS sp_node (
  group_id      text NOT NULL,
  node_id       text NOT NULL,
  role          text NOT NULL CHECK (role IN ('PASSIVE', 'ACTIVE', 'STEPPING_DOWN')),
  sync_endpoint text NOT NULL,
  thrift_endpoint text NOT NULL,
  heartbeat_at  timestamptz NOT NULL,
  started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (group_id, node_id)
);
