export { numberedFault } from './envelopes.js';
export { type FakeBrokerMode, FakeBrokers } from './fake-brokers.js';
