-- What a decision knew beyond its reason, as JSON: for the first decision on a
-- fault, `{"fault": {"kind", "lastStatAt", "declaredAt"}}` (epoch ms); for a
-- minimum-rule spawn, `{"replaces": "<member id>"}` when the autoscaler knew; so a
-- member's causal chain (last stat → fault → decision → terminate → spawn →
-- active) can be shown by `faultline explain` and the console. NULL otherwise.
ALTER TABLE autoscaler_action ADD COLUMN IF NOT EXISTS detail jsonb;

-- A member's decisions, read by its causal chain.
CREATE INDEX IF NOT EXISTS autoscaler_action_member ON autoscaler_action (member_id, id) WHERE member_id IS NOT NULL;

-- The minimum-rule spawn that replaced a member (`detail.replaces`), read by its causal chain.
CREATE INDEX IF NOT EXISTS autoscaler_action_replaces ON autoscaler_action (cluster_id, (detail->>'replaces'))
  WHERE action = 'MemberSpawnAction';
