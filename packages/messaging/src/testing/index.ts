export { type AutoscalerWatcherOptions, watchAsAutoscaler } from './autoscaler-watcher.js';
export { numberedFault } from './envelopes.js';
export { FAKE_BROKER_PAIR, type FakeBrokerMode, FakeBrokers } from './fake-brokers.js';
export { type FileOperation, LimitedFileSystem } from './limited-fs.js';
export { type SpLayout, type SpTickOptions, spLayout, spMemberFault, spTick } from './sp-output.js';
