/*
 * Faultline: cartridge agent -> stream processor (README "Thrift").
 *
 * The agent sends health statistics in batches. A batch carries the agent id
 * and a per-agent, monotonically increasing sequence: the SP drops a batch it
 * has already seen (agent id + sequence), so an agent may resend freely after
 * a failover. publish() is not oneway: its reply is the acknowledgement, and
 * the SP returns it only once its passive peer holds the batch (or no passive
 * is connected, a degraded state it logs).
 *
 * Regenerate the bindings with scripts/gen-thrift after editing this file.
 */

namespace js faultline
namespace py faultline

/** One health statistic of one member (the Stratos health-stat stream). */
struct HealthStat {
  1: required string clusterId,
  2: required string clusterInstanceId,
  3: required string networkPartitionId,
  4: required string partitionId,
  5: required string memberId,
  /** load_average | memory_consumption | requests_in_flight | ports_not_open */
  6: required string healthDescription,
  7: required double value,
  /** Epoch milliseconds at the agent when the stat was measured. */
  8: required i64 timestamp,
}

struct HealthStatBatch {
  /** The member id, or `<memberId>:<digits>` (one per agent life). */
  1: required string agentId,
  /** Starts at 1 for a new agent life; each new batch is previous + 1. */
  2: required i64 sequence,
  3: required list<HealthStat> stats,
  /**
   * The member's credential, issued by the cloud controller at spawn:
   * `<memberId>:<clusterId>:<networkPartitionId>:<mac>`, mac = base64url of
   * HMAC-SHA256(platform member key, "faultline-member-v1\n" + the three ids
   * joined by "\n"). The SP refuses a batch without a valid one, or with a
   * stat of any other member (README "Agents -> SP (Thrift)"). Optional on
   * the wire only so that an older agent gets a clear refusal.
   */
  4: optional string credential,
}

struct BatchAck {
  1: required string agentId,
  2: required i64 sequence,
  /** True when the SP had already accepted this batch (a resend). */
  3: required bool duplicate,
  /** The leader epoch of the SP node that accepted it. */
  4: required i64 epoch,
  /** False when no passive node held the batch (degraded, logged by the SP). */
  5: required bool replicated,
}

/** This node is not the active one: try the next endpoint. */
exception NotActive {
  1: required string message,
  2: optional string nodeId,
}

/**
 * The batch was received but refused; resending it will not help. The
 * message is `<reason>: <detail>` (at most 1 KiB), reason one of invalid,
 * credential_missing, credential_invalid, member_mismatch, agent_mismatch,
 * timestamp_out_of_window, value_out_of_range, sequence_out_of_window.
 */
exception InvalidBatch {
  1: required string message,
}

service HealthStatService {
  BatchAck publish(1: HealthStatBatch batch) throws (1: NotActive notActive, 2: InvalidBatch invalid),
}
