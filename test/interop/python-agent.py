"""A cartridge agent written against the project's IDL with Debian's python3-thrift:
publishes health stats for three members to an SP node for a while, then stops.
Usage: python-agent.py GEN_DIR PORT SECONDS"""
import sys
import time

sys.path.insert(0, sys.argv[1])
from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402

from faultline import HealthStatService  # noqa: E402
from faultline.ttypes import HealthStat, HealthStatBatch  # noqa: E402

port, seconds = int(sys.argv[2]), float(sys.argv[3])
transport = TTransport.TFramedTransport(TSocket.TSocket("127.0.0.1", port))
client = HealthStatService.Client(TBinaryProtocol.TBinaryProtocol(transport))
transport.open()
sequence, ack, end = 0, None, time.time() + seconds
while time.time() < end:
    sequence += 1
    now = int(time.time() * 1000)
    stats = [
        HealthStat(clusterId="py", clusterInstanceId="py-1", networkPartitionId="np-1", partitionId="p-1",
                   memberId="py-%d" % i, healthDescription="load_average", value=10.0 + i, timestamp=now)
        for i in range(3)
    ]
    ack = client.publish(HealthStatBatch(agentId="python-agent", sequence=sequence, stats=stats))
    time.sleep(0.2)
transport.close()
print("sent %d batches, last ack epoch %d replicated %s" % (sequence, ack.epoch, ack.replicated))
