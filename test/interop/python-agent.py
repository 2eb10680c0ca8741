"""A cartridge agent written against the project's IDL with Debian's python3-thrift:
publishes health stats for three members to an SP node for a while, then stops.
Each member's batches carry that member's credential, computed here as the
cloud controller issues it (README "Agents -> SP (Thrift)") from the platform's
member key, read from KEY_FILE.
Usage: python-agent.py GEN_DIR PORT SECONDS KEY_FILE"""
import base64
import hashlib
import hmac
import sys
import time

sys.path.insert(0, sys.argv[1])
from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402

from faultline import HealthStatService  # noqa: E402
from faultline.ttypes import HealthStat, HealthStatBatch  # noqa: E402

port, seconds, key_file = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with open(key_file, encoding="utf-8") as f:
    key = f.read().strip().encode("utf-8")


def credential(member_id, cluster_id, network_partition_id):
    message = "faultline-member-v1\n" + "\n".join([member_id, cluster_id, network_partition_id])
    mac = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    token = base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")
    return "%s:%s:%s:%s" % (member_id, cluster_id, network_partition_id, token)


members = ["py-%d" % i for i in range(3)]
credentials = {m: credential(m, "py", "np-1") for m in members}
transport = TTransport.TFramedTransport(TSocket.TSocket("127.0.0.1", port))
client = HealthStatService.Client(TBinaryProtocol.TBinaryProtocol(transport))
transport.open()
sequence, ack, end = 0, None, time.time() + seconds
while time.time() < end:
    sequence += 1
    now = int(time.time() * 1000)
    # One batch per member: a batch speaks for the member its credential names.
    for i, member in enumerate(members):
        stats = [
            HealthStat(clusterId="py", clusterInstanceId="py-1", networkPartitionId="np-1", partitionId="p-1",
                       memberId=member, healthDescription="load_average", value=10.0 + i, timestamp=now)
        ]
        batch = HealthStatBatch(agentId=member, sequence=sequence, stats=stats, credential=credentials[member])
        ack = client.publish(batch)
    time.sleep(0.2)
transport.close()
print("sent %d batches, last ack epoch %d replicated %s" % (sequence * len(members), ack.epoch, ack.replicated))
