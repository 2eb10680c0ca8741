export * from './checked-batch.js';
export * from './envelope.js';
export * from './events.js';
export * from './health.js';
export * from './identity.js';
export * from './member-credential.js';
export * from './member-env.js';
export {
  type BatchAckWire,
  generated as thriftGenerated,
  type HealthStatBatchWire,
  HealthStatService,
  type HealthStatServiceClient,
  type HealthStatWire,
  type Int64Like,
  MAX_CONTAINER_ELEMENTS,
  thrift,
} from './thrift.js';
export * from './thrift-service.js';
export * from './topics.js';
export * from './wire-codec.js';
