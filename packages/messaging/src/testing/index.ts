export { numberedFault } from './envelopes.js';
export { FAKE_BROKER_PAIR, type FakeBrokerMode, FakeBrokers } from './fake-brokers.js';
