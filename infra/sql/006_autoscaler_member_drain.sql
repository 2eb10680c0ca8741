-- Graceful drain (README "Autoscaler → Graceful drain"): a member terminated while it still serves
-- (scale down, max rule) is drained first. The row keeps when its drain ends at the latest, so a
-- restarted autoscaler, or the other node after a takeover, waits only for what is left of it and
-- never for a second full drain. NULL: no drain (a faulted member, a cluster without one).
ALTER TABLE autoscaler_member ADD COLUMN IF NOT EXISTS drain_until timestamptz;
